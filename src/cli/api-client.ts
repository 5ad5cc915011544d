/**
 * The admin API from the command line: where it is, the token, one call with its failures mapped to
 * exit codes a script can rely on, and the options and help every API verb shares.
 */
import { readFile } from "node:fs/promises";
import { type Command, InvalidArgumentError } from "commander";
import type { Output } from "./output.ts";

/** Exit codes of the admin verbs. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  UNAVAILABLE: 5,
  UNAUTHORIZED: 6,
  /** `status` only: some vserver is not running. */
  NOT_ALL_RUNNING: 7,
} as const;

const EXIT_HELP = [
  "",
  "Exit codes: 0 done; 1 unexpected failure; 2 bad arguments; 3 no such vserver, volume or node;",
  "4 conflict (VIP or name in use, dead or disabled node, ...); 5 the API or the cluster cannot be",
  "reached (retry); 6 wrong or missing token; 7 (status only) some vserver is not running.",
].join("\n");

export const API_DEFAULT = process.env.FLOTILLA_API ?? "http://127.0.0.1:7400";
export const TOKEN_FILE_DEFAULT = process.env.FLOTILLA_TOKEN_FILE ?? "flotilla-data/admin-token";
const REQUEST_TIMEOUT_MS = 120_000;

export interface CommonOptions {
  readonly api: string;
  readonly tokenFile: string;
  readonly json: boolean;
}

export class ApiFailure extends Error {
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}

const EXIT_OF_STATUS: Record<number, number> = {
  400: EXIT.USAGE,
  401: EXIT.UNAUTHORIZED,
  404: EXIT.NOT_FOUND,
  409: EXIT.CONFLICT,
  413: EXIT.USAGE,
  503: EXIT.UNAVAILABLE,
};

/** The bearer token from --token-file. */
export async function readToken(options: CommonOptions): Promise<string> {
  let token: string;
  try {
    token = (await readFile(options.tokenFile, "utf8")).trim();
  } catch (error) {
    throw new ApiFailure(
      EXIT.UNAUTHORIZED,
      `cannot read the admin token from ${options.tokenFile} (${error instanceof Error ? error.message : String(error)}); give --token-file`,
    );
  }
  if (token === "") throw new ApiFailure(EXIT.UNAUTHORIZED, `the token file ${options.tokenFile} is empty`);
  return token;
}

/** The failure of a request that got no answer at all. */
export function unreachable(options: CommonOptions, error: unknown): ApiFailure {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
  return new ApiFailure(
    EXIT.UNAVAILABLE,
    `the admin API at ${options.api} cannot be reached (${cause}); is the cluster up?`,
  );
}

export async function call(
  options: CommonOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const token = await readToken(options);
  let response: Response;
  try {
    response = await fetch(new URL(path, options.api), {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw unreachable(options, error);
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiFailure(
      EXIT.FAILURE,
      `${options.api} answered ${response.status} with something that is not JSON`,
    );
  }
  if (!response.ok) {
    const message =
      typeof parsed === "object" &&
      parsed !== null &&
      "error" in parsed &&
      typeof parsed.error === "object" &&
      parsed.error !== null &&
      "message" in parsed.error
        ? String(parsed.error.message)
        : `HTTP ${response.status}`;
    const suffix = response.status === 401 ? ` (token from ${options.tokenFile})` : "";
    throw new ApiFailure(EXIT_OF_STATUS[response.status] ?? EXIT.FAILURE, `${message}${suffix}`);
  }
  return parsed;
}

/** Runs a verb: prints its result (JSON with --json), sets the exit code. */
export async function runAdmin(
  verb: string,
  options: CommonOptions,
  output: Output,
  body: () => Promise<{ json: unknown; line: string; exitCode?: number }>,
): Promise<void> {
  try {
    const result = await body();
    output.line(options.json ? JSON.stringify(result.json, null, 2) : result.line);
    process.exitCode = result.exitCode ?? EXIT.OK;
  } catch (error) {
    const exitCode =
      error instanceof ApiFailure
        ? error.exitCode
        : error instanceof InvalidArgumentError
          ? EXIT.USAGE
          : EXIT.FAILURE;
    const message = error instanceof Error ? error.message : String(error);
    if (options.json) output.line(JSON.stringify({ error: { message, exitCode } }));
    output.error(`${verb}: ${message}`);
    process.exitCode = exitCode;
  }
}

export function withCommon(command: Command, example: string): Command {
  return command
    .option("--api <url>", "the admin API (env FLOTILLA_API)", API_DEFAULT)
    .option("--token-file <file>", "the admin token (env FLOTILLA_TOKEN_FILE)", TOKEN_FILE_DEFAULT)
    .option("--json", "print the API's JSON, for scripts", false)
    .addHelpText("after", `${EXIT_HELP}\n\nExample:\n  ${example}`);
}

/**
 * `flotilla events [--follow]`: what the cluster decided and why (failovers, moves, fences, repairs,
 * balancing), one line per event, from the admin API's event ring; `--follow` goes on printing them
 * as they happen (Server-Sent Events), reconnecting from the last one seen if the stream breaks.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type Command, InvalidArgumentError, Option } from "commander";
import { z } from "zod";
import { EVENT_KINDS, EVENTS_KEPT, type EventRecord, eventRecordSchema } from "../cluster/event-record.ts";
import {
  ApiFailure,
  type CommonOptions,
  call,
  EXIT,
  readToken,
  unreachable,
  withCommon,
} from "./api-client.ts";
import { formatEvent, formatMissed } from "./event-format.ts";
import { type Output, processOutput } from "./output.ts";
import { untilStopSignal } from "./run-verb.ts";
import { SseParser } from "./sse-parser.ts";

const eventPageSchema = z.object({
  events: z.array(eventRecordSchema).max(EVENTS_KEPT),
  lastSeq: z.number().int().nonnegative(),
  oldestSeq: z.number().int().nonnegative(),
  malformed: z.number().int().nonnegative(),
});
const missedSchema = z.object({ from: z.number().int(), to: z.number().int() });

const RECONNECT_MS_MIN = 500;
const RECONNECT_MS_MAX = 10_000;

interface EventsOptions extends CommonOptions {
  readonly limit: number;
  readonly since?: number;
  readonly follow: boolean;
  readonly kind?: string[];
}

function wholeNumber(max: number): (text: string) => number {
  return (text) => {
    if (!/^\d{1,16}$/.test(text) || Number(text) > max)
      throw new InvalidArgumentError(`"${text}" is not a whole number from 0 to ${max}`);
    return Number(text);
  };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function checked<T>(schema: z.ZodType<T>, raw: unknown, what: string): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ApiFailure(EXIT.FAILURE, `${what} is not what this flotilla expects`);
  return parsed.data;
}

function parseJson<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ApiFailure(EXIT.FAILURE, `${what} is not JSON`);
  }
  return checked(schema, raw, what);
}

class EventPrinter {
  private readonly options: EventsOptions;
  private readonly output: Output;

  constructor(options: EventsOptions, output: Output) {
    this.options = options;
    this.output = output;
  }

  print(event: EventRecord): void {
    if (this.options.kind !== undefined && !this.options.kind.includes(event.kind)) return;
    this.output.line(this.options.json ? JSON.stringify(event) : formatEvent(event));
  }

  missed(from: number, to: number): void {
    if (this.options.json) this.output.line(JSON.stringify({ missed: { from, to } }));
    else this.output.error(formatMissed(from, to));
  }
}

/** One connection to the stream, until it ends; returns the last sequence number seen. */
async function streamOnce(
  options: EventsOptions,
  token: string,
  since: number,
  printer: EventPrinter,
  signal: AbortSignal,
): Promise<number> {
  const response = await fetch(new URL(`/v1/events/stream?since=${since}`, options.api), {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    signal,
  });
  if (!response.ok || response.body === null) {
    const exitCode = response.status === 401 ? EXIT.UNAUTHORIZED : EXIT.FAILURE;
    throw new ApiFailure(exitCode, `the event stream answered HTTP ${response.status}`);
  }
  const parser = new SseParser();
  let last = since;
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    for (const message of parser.push(decoder.decode(chunk, { stream: true }))) {
      if (message.event === "missed") {
        const { from, to } = parseJson(missedSchema, message.data, "a missed-events message");
        printer.missed(from, to);
        continue;
      }
      const event = parseJson(eventRecordSchema, message.data, "an event");
      last = Math.max(last, event.seq);
      printer.print(event);
    }
  }
  return last;
}

/** Follows the stream until SIGINT or SIGTERM, reconnecting (from the last event seen) when it breaks. */
async function follow(
  options: EventsOptions,
  since: number,
  printer: EventPrinter,
  output: Output,
): Promise<void> {
  const token = await readToken(options);
  const stop = new AbortController();
  void untilStopSignal().then(() => stop.abort());
  let last = since;
  let delay = RECONNECT_MS_MIN;
  while (!stop.signal.aborted) {
    try {
      last = await streamOnce(options, token, last, printer, stop.signal);
      delay = RECONNECT_MS_MIN;
    } catch (error) {
      if (stop.signal.aborted) break;
      if (error instanceof ApiFailure && error.exitCode === EXIT.UNAUTHORIZED) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      output.error(`events: the stream broke (${reason}); reconnecting from #${last} in ${delay} ms`);
    }
    if (stop.signal.aborted) break;
    await sleep(delay, undefined, { signal: stop.signal }).catch(() => undefined);
    delay = Math.min(delay * 2, RECONNECT_MS_MAX);
  }
}

async function runEvents(options: EventsOptions, output: Output): Promise<number> {
  const printer = new EventPrinter(options, output);
  const query = new URLSearchParams({ limit: String(options.limit) });
  if (options.since !== undefined) query.set("since", String(options.since));
  const page = checked(
    eventPageSchema,
    await call(options, "GET", `/v1/events?${query}`),
    "the API's event page",
  );
  const firstShown = page.events[0]?.seq;
  if (options.since !== undefined && firstShown !== undefined && firstShown > options.since + 1)
    printer.missed(options.since + 1, firstShown - 1);
  for (const event of page.events) printer.print(event);
  if (!options.follow) {
    if (page.events.length === 0 && !options.json) output.error("(no events yet)");
    return EXIT.OK;
  }
  await follow(
    options,
    page.events.at(-1)?.seq ?? Math.max(options.since ?? 0, page.lastSeq),
    printer,
    output,
  );
  return EXIT.OK;
}

export function registerEvents(program: Command, output: Output = processOutput): void {
  const command = program
    .command("events")
    .description(
      "what the cluster decided and why: failovers, moves, fences, repairs, balancing; --follow for live",
    )
    .option("-f, --follow", "go on printing events as they happen (Ctrl-C stops)", false)
    .option(
      "-n, --limit <n>",
      `how many recent events first (at most ${EVENTS_KEPT})`,
      wholeNumber(EVENTS_KEPT),
      20,
    )
    .option(
      "--since <seq>",
      "the events after this sequence number (the #N at the end of a line)",
      wholeNumber(Number.MAX_SAFE_INTEGER),
    )
    .addOption(
      new Option("--kind <kind>", "only events of this kind; repeat for more")
        .choices([...EVENT_KINDS])
        .argParser(collect),
    )
    .addHelpText(
      "after",
      [
        "",
        "Each line: time (UTC), kind, subject (vserver, node, storage server or volume#chunk), the reason,",
        "then [cause, by whom, #sequence number]. --json prints each event as a JSON line.",
        "Kinds: node (joined, lease-lost), place, failover (node-dead), move (drain, unreachable, operator),",
        "live-move (moved, rolled-back), blocked (pinned-node-dead, no-node, no-capacity, cooldown,",
        "unreachable), fence (forced-takeover, fenced), repair (server-dead, re-replicating, re-replicated, replaced),",
        "balance (hot, full).",
        `The cluster keeps the last ${EVENTS_KEPT} events (in the coordination store); counts of all of them`,
        "are on the admin API's /metrics (flotilla_events_total).",
      ].join("\n"),
    );
  withCommon(command, "flotilla events --follow    # then, elsewhere: flotilla fault kill-node n1").action(
    async (options: EventsOptions) => {
      try {
        process.exitCode = await runEvents(options, output);
      } catch (error) {
        const failure =
          error instanceof ApiFailure
            ? error
            : error instanceof TypeError
              ? unreachable(options, error)
              : new ApiFailure(EXIT.FAILURE, error instanceof Error ? error.message : String(error));
        output.error(`events: ${failure.message}`);
        process.exitCode = failure.exitCode;
      }
    },
  );
}

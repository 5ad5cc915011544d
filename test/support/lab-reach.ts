/**
 * Reachability inside the network lab without ping (iputils-ping is not installed everywhere): a TCP
 * listener started in one namespace, and a connect from another that either completes or does not.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import type { NetworkLab } from "../../src/net/lab.ts";

/** Every node's listener uses this port; each namespace has its own port space. */
export const LAB_REACH_PORT = 7999;
/** On a lab's bridges a connect completes in well under a millisecond; this is the "no" answer's wait. */
const CONNECT_MS_MAX = 1000;
/** Starting Node inside a namespace takes a fraction of a second; this bounds a hang. */
const LISTENER_START_MS_MAX = 20_000;

const LISTEN_SCRIPT = `require("node:net").createServer((s) => s.end()).listen(Number(process.argv[1]), "0.0.0.0", () => console.log("listening"));`;
const CONNECT_SCRIPT = `const s = require("node:net").connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: Number(process.argv[3]) });
s.on("connect", () => process.exit(0));
s.on("timeout", () => process.exit(3));
s.on("error", () => process.exit(4));`;

/** A listener on every address of `namespace`; resolves once it listens. The caller kills it. */
export async function startListener(lab: NetworkLab, namespace: string): Promise<ChildProcess> {
  const child = lab.exec(namespace, [process.execPath, "-e", LISTEN_SCRIPT, String(LAB_REACH_PORT)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const listening = new Promise<void>((resolve, reject) => {
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      if (chunk.includes("listening")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`the listener in ${namespace} exited (${code})`)));
    child.once("error", reject);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), LISTENER_START_MS_MAX);
  try {
    await listening;
  } finally {
    clearTimeout(timer);
  }
  return child;
}

/** Whether a TCP connect from `namespace` to `address` (its listener) completes within a second. */
export async function reaches(lab: NetworkLab, namespace: string, address: string): Promise<boolean> {
  const child = lab.exec(
    namespace,
    [process.execPath, "-e", CONNECT_SCRIPT, address, String(LAB_REACH_PORT), String(CONNECT_MS_MAX)],
    { stdio: "ignore", timeout: CONNECT_MS_MAX * 20 },
  );
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0 && code !== 3 && code !== 4)
    throw new Error(`the connect from ${namespace} ended with ${code}`);
  return code === 0;
}

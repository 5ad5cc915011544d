/**
 * prom-client counters and gauges whose values are read at scrape time from numbers kept elsewhere
 * (the call path's plain counters, what a scrape read from the store), rather than incremented
 * through prom-client: each scrape sets every sample afresh, so a label set that is gone is gone.
 */
import { Counter, Gauge, type LabelValues, type Registry } from "prom-client";

export type Samples<L extends string> = () => Iterable<readonly [LabelValues<L>, number]>;

interface Collected<L extends string> {
  readonly registry: Registry;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly samples: Samples<L>;
}

function config<L extends string>(spec: Collected<L>) {
  return { name: spec.name, help: spec.help, labelNames: spec.labelNames, registers: [spec.registry] };
}

/**
 * A counter (the samples must be totals that only grow while the process lives) or a gauge, set
 * afresh from the samples at every scrape.
 */
export function collected<L extends string>(type: "counter" | "gauge", spec: Collected<L>): void {
  const { samples } = spec;
  if (type === "gauge") {
    new Gauge<L>({
      ...config(spec),
      collect() {
        this.reset();
        for (const [labels, value] of samples()) this.set(labels, value);
      },
    });
    return;
  }
  new Counter<L>({
    ...config(spec),
    collect() {
      this.reset();
      for (const [labels, value] of samples()) this.inc(labels, value);
    },
  });
}

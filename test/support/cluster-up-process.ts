/** `flotilla cluster up` as a process on chosen ports, with small volumes, ready once it says so. */
import { type FlotillaProcess, spawnFlotilla } from "./flotilla-process.ts";

export interface ClusterUpPorts {
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly adminPort: number;
}

export function spawnClusterUp(dataDir: string, ports: ClusterUpPorts): Promise<FlotillaProcess> {
  return spawnFlotilla(
    [
      "cluster",
      "up",
      "--data",
      dataDir,
      "--nfs-port",
      String(ports.nfsPort),
      "--mount-port",
      String(ports.mountPort),
      "--admin-port",
      String(ports.adminPort),
      "--volume-size",
      "64M",
    ],
    /^Ctrl-C stops the cluster/m,
    "flotilla cluster up",
  );
}

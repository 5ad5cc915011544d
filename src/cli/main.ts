import { Command, CommanderError } from "commander";
import { registerAdmin } from "./admin.ts";
import { registerClusterUp } from "./cluster-up.ts";
import { registerDemo } from "./demo.ts";
import { registerEvents } from "./events.ts";
import { registerFsck } from "./fsck.ts";
import { registerLab } from "./lab.ts";
import { registerMkfs } from "./mkfs.ts";
import { registerNode } from "./node.ts";
import { registerServe } from "./serve.ts";
import { registerStorage } from "./storage.ts";
import { registerStorageAdmin } from "./storage-admin.ts";

/** Usage errors exit 2, as most Unix tools do (commander alone would exit 1). */
const EXIT_USAGE = 2;

function buildProgram(): Command {
  const program = new Command("flotilla")
    .description("Flotilla: a clustered NAS serving NFSv3 from floating virtual servers")
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText("after", "\nExample:\n  flotilla mkfs /tmp/vol --size 1G && flotilla fsck /tmp/vol");
  registerMkfs(program);
  registerFsck(program);
  registerServe(program);
  registerStorageAdmin(registerStorage(program));
  registerDemo(program);
  registerNode(program);
  registerClusterUp(program);
  registerAdmin(program);
  registerEvents(program);
  registerLab(program);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  // Commander has already printed the usage message; only the exit status is left to set.
  if (!(error instanceof CommanderError)) throw error;
  process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
}

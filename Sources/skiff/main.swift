// skiff: the container engine's command line. Everything lives in SkiffCommands; this is the
// entry point, synchronous so that the process stays single-threaded (DESIGN §11).
import SkiffCommands

SkiffCommand.runAndExit()

// skiff-runtime: the OCI runtime. Everything lives in SkiffCommands; this is the entry point.
import SkiffCommands

RuntimeCommand.main()

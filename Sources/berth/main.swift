import BerthInit
import Glibc

exit(berthMain(arguments: CommandLine.arguments))

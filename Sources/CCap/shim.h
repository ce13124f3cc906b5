// libcap for Swift. cap_t arrives as OpaquePointer.
#include <sys/capability.h>

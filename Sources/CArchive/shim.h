// libarchive for Swift: archive handles arrive as OpaquePointer.
#include <archive.h>
#include <archive_entry.h>

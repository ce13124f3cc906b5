// libarchive for Swift: archive handles arrive as OpaquePointer. The AE_IF* file types are cast
// macros, which Swift cannot import, so they are repeated here as constants.
#include <archive.h>
#include <archive_entry.h>

static const unsigned int SK_AE_IFMT = AE_IFMT;
static const unsigned int SK_AE_IFREG = AE_IFREG;
static const unsigned int SK_AE_IFLNK = AE_IFLNK;
static const unsigned int SK_AE_IFSOCK = AE_IFSOCK;
static const unsigned int SK_AE_IFCHR = AE_IFCHR;
static const unsigned int SK_AE_IFBLK = AE_IFBLK;
static const unsigned int SK_AE_IFDIR = AE_IFDIR;
static const unsigned int SK_AE_IFIFO = AE_IFIFO;

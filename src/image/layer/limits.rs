//! Caps on what one layer tar may ask of us (Go archive/tar CVE-2022-2879 class: parse bombs).

/// Longest entry or link name, in bytes (PATH_MAX).
pub const MAX_NAME: usize = 4096;
/// Longest single path component (NAME_MAX).
pub const MAX_COMPONENT: usize = 255;
/// Most xattrs on one entry.
pub const MAX_XATTRS: usize = 128;
/// Largest xattr value (the kernel's XATTR_SIZE_MAX).
pub const MAX_XATTR_VALUE: usize = 64 * 1024;
/// Largest PAX extended header, local or global.
pub const MAX_PAX: u64 = 1024 * 1024;
/// Largest GNU long name or long link record (a name plus its NUL).
pub const MAX_GNU_LONG: u64 = MAX_NAME as u64 + 1;
/// Size of the read and copy buffers.
pub const BUF_SIZE: usize = 1024 * 1024;

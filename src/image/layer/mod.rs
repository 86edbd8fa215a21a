//! Layer tar streams: written from a directory (an overlay upper or a rootfs), and unpacked
//! into a layer directory in overlay form.

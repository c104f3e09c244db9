//! What an ebuild repository is made of, read without running anything: which kind of input each path is (one `PathKind`), the repository's name and profiles, the md5-cache index (inheritance, reverse dependencies, keywords), and package atoms and versions (PMS ordering).

pub mod index;
pub mod layout;
pub mod repo;
pub mod untrusted;
pub mod version;

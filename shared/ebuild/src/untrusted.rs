//! Reading files of a tree a pull request wrote, as host code must: never through a symbolic link (a PR can commit
//! `profiles/repo_name -> /dev/zero` or `metadata.xml -> /proc/self/environ`), only regular files, and never more
//! than a limit (a PR can commit or generate a file of gigabytes).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

/// The most any one repository file prci reads itself may hold (profiles files, metadata.xml, md5-cache entries and
/// Manifests are far below it: Gentoo's largest profiles file is under 1 MiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

fn refused(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

/// `root/rel`, refusing a `rel` that leaves `root` or passes through a symbolic link (in the tree: `root` itself is
/// prci's own path and trusted).
pub fn resolve(root: &Path, rel: impl AsRef<Path>) -> io::Result<PathBuf> {
    let mut path = root.to_path_buf();
    for component in rel.as_ref().components() {
        match component {
            Component::Normal(name) => path.push(name),
            Component::CurDir => continue,
            _ => return Err(refused(&root.join(rel.as_ref()), "not a path inside the tree")),
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(refused(&path, "a symbolic link; not followed")),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(path)
}

/// The bytes of the regular file `root/rel`, at most `limit` of them (more is an error, not a truncation).
pub fn read_limited(root: &Path, rel: impl AsRef<Path>, limit: u64) -> io::Result<Vec<u8>> {
    let path = resolve(root, rel)?;
    // O_NOFOLLOW: the last component cannot have become a link since `resolve` looked; O_NONBLOCK: a FIFO does not
    // block the open (it is refused below).
    let file = File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused(&path, "not a regular file"));
    }
    if meta.len() > limit {
        return Err(refused(&path, &format!("{} bytes, more than the {limit} prci reads", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(refused(&path, &format!("more than the {limit} bytes prci reads")));
    }
    Ok(bytes)
}

/// The text of `root/rel` ([`read_limited`] with [`MAX_FILE_BYTES`]; invalid UTF-8 is replaced).
pub fn read_to_string(root: &Path, rel: impl AsRef<Path>) -> io::Result<String> {
    read_limited(root, rel, MAX_FILE_BYTES).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The entries of the directory `root/rel`, refusing a symbolic link on the way.
pub fn read_dir(root: &Path, rel: impl AsRef<Path>) -> io::Result<std::fs::ReadDir> {
    std::fs::read_dir(resolve(root, rel)?)
}

/// Whether `root/rel` is a real directory (not a link to one).
pub fn is_dir(root: &Path, rel: impl AsRef<Path>) -> bool {
    resolve(root, rel).and_then(std::fs::symlink_metadata).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_special_files_and_big_files_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("profiles")).expect("dir");
        std::fs::write(root.join("profiles/repo_name"), "gentoo\n").expect("write");
        assert_eq!(read_to_string(root, "profiles/repo_name").expect("plain file"), "gentoo\n");
        std::os::unix::fs::symlink("/dev/zero", root.join("profiles/zero")).expect("link");
        std::os::unix::fs::symlink("/proc/self/environ", root.join("profiles/environ")).expect("link");
        std::os::unix::fs::symlink("/etc", root.join("etc")).expect("link");
        for rel in ["profiles/zero", "profiles/environ", "etc/passwd", "../outside", "/etc/passwd"] {
            let e = read_to_string(root, rel).expect_err(rel);
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{rel}: {e}");
        }
        assert!(!is_dir(root, "etc") && is_dir(root, "profiles"));
        assert!(read_dir(root, "etc").is_err());
        std::fs::write(root.join("big"), vec![b'x'; 2048]).expect("write");
        assert!(read_limited(root, "big", 1024).is_err());
        assert_eq!(read_limited(root, "big", 2048).expect("at the limit").len(), 2048);
        assert_eq!(read_to_string(root, "missing").expect_err("missing").kind(), io::ErrorKind::NotFound);
    }
}

//! The private runtime directory (mode 0700) holding the sockets and generated files.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A runtime directory; [`RuntimeDir::cleanup`] removes what de1d put there.
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    /// Created by this process (removed entirely at the end) rather than given.
    created: bool,
}

impl RuntimeDir {
    /// Uses `configured` (created if missing; must otherwise be a directory owned by this
    /// user, and is narrowed to mode 0700), or creates a fresh `de1d-<pid>` directory under
    /// `$XDG_RUNTIME_DIR` or the temporary directory.
    pub fn create(configured: Option<&Path>) -> io::Result<RuntimeDir> {
        match configured {
            Some(p) => Self::use_given(p),
            None => Self::create_fresh(&default_base()),
        }
    }

    fn use_given(path: &Path) -> io::Result<RuntimeDir> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => {
                if !meta.is_dir() {
                    return Err(io::Error::other(format!(
                        "{} exists and is not a directory",
                        path.display()
                    )));
                }
                if meta.uid() != nix::unistd::geteuid().as_raw() {
                    return Err(io::Error::other(format!(
                        "{} belongs to another user",
                        path.display()
                    )));
                }
                if meta.mode() & 0o777 != 0o700 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
                }
                Ok(RuntimeDir {
                    path: path.to_owned(),
                    created: false,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent)?;
                    }
                }
                make_private_dir(path)?;
                Ok(RuntimeDir {
                    path: path.to_owned(),
                    created: true,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn create_fresh(base: &Path) -> io::Result<RuntimeDir> {
        let pid = std::process::id();
        for n in 0..100u32 {
            let name = if n == 0 {
                format!("de1d-{pid}")
            } else {
                format!("de1d-{pid}-{n}")
            };
            let path = base.join(name);
            // mkdir fails on anything already there (including a planted symlink).
            match make_private_dir(&path) {
                Ok(()) => {
                    return Ok(RuntimeDir {
                        path,
                        created: true,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "cannot create a runtime directory under {}",
            base.display()
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of a file inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Removes the directory if de1d created it, else only the files de1d puts there.
    pub fn cleanup(&self) {
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            for name in OWN_FILES {
                let _ = std::fs::remove_file(self.path.join(name));
            }
        }
    }
}

/// Files de1d creates in a runtime directory it was given.
const OWN_FILES: [&str; 4] = [
    ipc_schema::child::LAUNCHER_SOCKET,
    ipc_schema::child::CONTROLLER_SOCKET,
    ipc_schema::child::CONFIG_FILE,
    crate::broker::CONFIG_FILE,
];

fn default_base() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if Path::new(&d).is_dir() => PathBuf::from(d),
        _ => std::env::temp_dir(),
    }
}

fn make_private_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(path)?;
    // The umask may have removed bits; make it exactly 0700.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Writes a file readable only by its owner (it may contain passwords).
pub fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("meta").mode() & 0o777
    }

    #[test]
    fn a_fresh_directory_is_private_and_removed_at_cleanup() {
        let base = tempfile::tempdir().expect("tempdir");
        let rt = RuntimeDir::create_fresh(base.path()).expect("create");
        assert_eq!(mode(rt.path()), 0o700);
        write_private(&rt.join("config.toml"), "x").expect("write");
        assert_eq!(mode(&rt.join("config.toml")), 0o600);
        // A second one never reuses the first.
        let rt2 = RuntimeDir::create_fresh(base.path()).expect("create");
        assert_ne!(rt.path(), rt2.path());
        rt.cleanup();
        assert!(!rt.path().exists());
    }

    #[test]
    fn a_given_directory_is_narrowed_and_only_our_files_are_removed() {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("rt");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(dir.join("keep"), "").expect("write");
        let rt = RuntimeDir::create(Some(&dir)).expect("use");
        assert_eq!(mode(&dir), 0o700);
        write_private(&rt.join(ipc_schema::child::CONFIG_FILE), "").expect("write");
        rt.cleanup();
        assert!(dir.join("keep").exists());
        assert!(!dir.join(ipc_schema::child::CONFIG_FILE).exists());
    }

    #[test]
    fn a_missing_given_directory_is_created() {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("a/b");
        let rt = RuntimeDir::create(Some(&dir)).expect("create");
        assert_eq!(mode(&dir), 0o700);
        rt.cleanup();
        assert!(!dir.exists());
    }

    #[test]
    fn a_file_is_not_a_runtime_directory() {
        let base = tempfile::tempdir().expect("tempdir");
        let f = base.path().join("f");
        std::fs::write(&f, "").expect("write");
        assert!(RuntimeDir::create(Some(&f)).is_err());
    }
}

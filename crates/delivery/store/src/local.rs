//! [`LocalDirStore`]: objects as files under one directory, each key a relative path.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{check_key, BoxFuture, ObjectStore, StoreError};

/// Objects as files under a directory (the default: `<data_dir>/objects`).
#[derive(Debug, Clone)]
pub struct LocalDirStore {
    root: PathBuf,
}

impl LocalDirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io(key: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        key: key.to_owned(),
        source,
    }
}

impl ObjectStore for LocalDirStore {
    fn put(&self, key: &str, parts: Vec<Bytes>) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = key.to_owned();
        Box::pin(async move {
            let path = self.path(&key)?;
            // One blocking task for the whole object: tokio::fs would hop to the blocking
            // pool for every call (directory, create, each write, flush, rename) and copy
            // the bytes into its own buffer on the way; with a segment per rendition per
            // channel every two seconds, those hops were a visible share of the CPU.
            let written = tokio::task::spawn_blocking(move || write_file(&path, &parts)).await;
            match written {
                Ok(r) => r.map_err(io(&key)),
                Err(e) => Err(io(&key)(std::io::Error::other(e))),
            }
        })
    }

    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
        let key = key.to_owned();
        Box::pin(async move {
            let path = self.path(&key)?;
            match tokio::fs::read(&path).await {
                Ok(v) => Ok(Some(Bytes::from(v))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(&key)(e)),
            }
        })
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = key.to_owned();
        Box::pin(async move {
            let path = self.path(&key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&key)(e)),
            }
            // Empty session / rendition directories go too, so that a channel that does not
            // record leaves nothing behind; a directory still in use is simply not empty.
            let mut dir = path.parent();
            for _ in 0..3 {
                match dir {
                    Some(d) if d != self.root && tokio::fs::remove_dir(d).await.is_ok() => {
                        dir = d.parent();
                    }
                    _ => break,
                }
            }
            Ok(())
        })
    }

    fn children(
        &self,
        prefix: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let prefix = prefix.to_owned();
        let store = self.clone();
        Box::pin(async move {
            // Directory reads block; the listing is short and rare (retention sweeps).
            tokio::task::spawn_blocking(move || store.children_now(&prefix, limit))
                .await
                .unwrap_or_else(|e| Err(io("children")(std::io::Error::other(e))))
        })
    }

    fn delete_prefix(&self, prefix: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let prefix = prefix.to_owned();
        Box::pin(async move {
            let dir = self.path(&prefix)?;
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(&prefix)(e)),
            }
        })
    }
}

/// Write then rename: a reader never sees half an object.
fn write_file(path: &Path, parts: &[Bytes]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("part-write");
    let mut f = std::fs::File::create(&tmp)?;
    for p in parts {
        f.write_all(p)?;
    }
    drop(f);
    std::fs::rename(&tmp, path)
}

impl LocalDirStore {
    fn children_now(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let dir = self.path(prefix)?;
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(prefix)(e)),
        };
        let mut out = Vec::new();
        for entry in rd.take(limit) {
            let entry = entry.map_err(io(prefix))?;
            // Half-written objects (`.part-write`) are not objects yet.
            if let Some(name) = entry
                .file_name()
                .to_str()
                .filter(|n| !n.ends_with(".part-write"))
            {
                out.push(name.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_then_get() {
        let dir = std::env::temp_dir().join(format!("starling-store-{}", std::process::id()));
        let s = LocalDirStore::new(&dir);
        s.put(
            "a/b/1.m4s",
            vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")],
        )
        .await
        .unwrap();
        assert_eq!(
            s.get("a/b/1.m4s").await.unwrap().unwrap(),
            Bytes::from_static(b"abcd")
        );
        assert!(s.get("a/b/2.m4s").await.unwrap().is_none());
        assert!(s.get("../x").await.is_err());
        s.delete("a/b/1.m4s").await.unwrap();
        assert!(s.get("a/b/1.m4s").await.unwrap().is_none());
        // Twice is fine; its emptied directories are gone, the root stays.
        s.delete("a/b/1.m4s").await.unwrap();
        assert!(!dir.join("a").exists());
        assert!(dir.exists());
        assert!(s.delete("../x").await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}

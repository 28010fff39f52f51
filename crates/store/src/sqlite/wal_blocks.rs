//! Disk blocks kept allocated ahead of the WAL's end, so the writer's appends
//! never wait for a checkpoint to allocate them.
//!
//! Under steady writes the WAL never starts over and grows (see
//! [`super::checkpoint_regularly`]), so every commit appends past its end. On
//! ext4 an append only reserves its blocks; they are allocated when the pages
//! are written out, which the checkpoint's `fsync` of the WAL does, holding
//! the file's block map while it allocates. An append arriving then waits
//! until the `fsync` is done: on a slow disk, the writer and every write
//! behind it stalled for up to two seconds (docs/BENCHMARKS-LOG.md,
//! "Flood isolation"). Blocks allocated beforehand (`fallocate` without changing the
//! file's size, so SQLite sees the same WAL) leave the `fsync` nothing to
//! allocate. SQLite's own cut back of a grown WAL (`journal_size_limit`)
//! frees them with the rest.

use std::path::PathBuf;

/// How far past the WAL's end its blocks are kept allocated; topped up once
/// less than half of it is left. The top-up waits for the checkpoint before
/// it, whose `fsync` took up to 2.6 s under the sign-in flood while the WAL
/// grew about 40 MB a second: 32 MiB ran out in every run watched, half of
/// 256 MiB lasts three seconds (docs/BENCHMARKS-LOG.md, 2026-12-03).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const ALLOCATED_AHEAD: u64 = 256 * 1024 * 1024;

/// The WAL of one database file, and whether allocating ahead still works.
#[derive(Debug)]
pub(crate) struct WalBlocks {
    wal: PathBuf,
    given_up: bool,
}

impl WalBlocks {
    /// The WAL beside the database file `database`.
    pub(crate) fn of(database: &std::path::Path) -> Self {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            wal: PathBuf::from(wal),
            given_up: false,
        }
    }

    /// Allocates [`ALLOCATED_AHEAD`] past the WAL's end if less than half of
    /// it is left. A missing WAL (none written yet) is no error; any other
    /// failure (a file system without `fallocate`, a full disk) is logged once
    /// and allocating ahead stops: SQLite's appends allocate as they always do.
    pub(crate) fn keep_ahead(&mut self) {
        if self.given_up {
            return;
        }
        match allocate_ahead(&self.wal) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                self.given_up = true;
                tracing::warn!(%error, wal = %self.wal.display(), "cannot allocate the WAL's blocks ahead; appends will allocate them");
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn allocate_ahead(wal: &std::path::Path) -> std::io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::OpenOptions::new().write(true).open(wal)?;
    let size = file.metadata()?;
    // st_blocks counts 512-byte units, allocated ahead of the end included.
    if size.blocks() * 512 >= size.len() + ALLOCATED_AHEAD / 2 {
        return Ok(());
    }
    fallocate(
        &file,
        FallocateFlags::KEEP_SIZE,
        size.len(),
        ALLOCATED_AHEAD,
    )?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn allocate_ahead(_wal: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}

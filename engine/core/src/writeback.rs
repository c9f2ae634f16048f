//! Durability that keeps pace with a transfer: while a large file is
//! written, a background thread syncs what is written so far every
//! [`STEP`] bytes, so the disk writes during the transfer instead of after
//! it and the final `fsync` has only the last bytes left. The caller still
//! makes that final `fsync` itself; this only moves most of its work
//! earlier. An error of a background sync is kept and returned by
//! [`Writeback::finish`]: it would not be reported again to a later
//! `fsync` of the same file.

use std::fs::File;
use std::io;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

/// Bytes written between two background syncs.
pub const STEP: u64 = 16 * 1024 * 1024;

/// The background syncs of one file.
#[derive(Debug, Default)]
pub struct Writeback {
    /// Bytes written since the last sync was asked for.
    pending: u64,
    worker: Option<Worker>,
    /// An error of a background sync that could not start.
    failed: Option<io::Error>,
}

#[derive(Debug)]
struct Worker {
    wake: SyncSender<()>,
    thread: JoinHandle<io::Result<()>>,
}

impl Writeback {
    /// No sync yet; the thread starts with the first [`STEP`] written.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `n` bytes written to `file`; past a [`STEP`], asks for a sync
    /// without waiting (one already asked for and not begun covers it).
    pub fn wrote(&mut self, file: &File, n: u64) {
        self.pending += n;
        if self.pending < STEP || self.failed.is_some() {
            return;
        }
        self.pending = 0;
        if self.worker.is_none() {
            match file.try_clone().and_then(spawn) {
                Ok(worker) => self.worker = Some(worker),
                Err(e) => {
                    self.failed = Some(e);
                    return;
                }
            }
        }
        if let Some(worker) = &self.worker {
            match worker.wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                // The thread stopped after an error; finish() returns it.
                Err(TrySendError::Disconnected(())) => {}
            }
        }
    }

    /// Waits for the background syncs to end; the first error of one.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        match self.worker.take() {
            Some(worker) => worker.stop(),
            None => Ok(()),
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            let _ = worker.stop();
        }
    }
}

impl Worker {
    fn stop(self) -> io::Result<()> {
        drop(self.wake);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writeback thread panicked")))
    }
}

fn spawn(file: File) -> io::Result<Worker> {
    let (wake, asked) = sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("upkeep-writeback".into())
        .spawn(move || run(&file, &asked))?;
    Ok(Worker { wake, thread })
}

fn run(file: &File, asked: &Receiver<()>) -> io::Result<()> {
    while asked.recv().is_ok() {
        file.sync_data()?;
    }
    Ok(())
}

/// A file written through a [`Writeback`]: what is written is synced in
/// the background as more follows. [`SyncedWriter::finish`] makes it
/// durable.
#[derive(Debug)]
pub struct SyncedWriter<'a> {
    file: &'a File,
    writeback: Writeback,
}

impl<'a> SyncedWriter<'a> {
    /// Writes to `file`.
    pub fn new(file: &'a File) -> Self {
        Self {
            file,
            writeback: Writeback::new(),
        }
    }

    /// Ends the background syncs and fsyncs the file.
    pub fn finish(self) -> io::Result<()> {
        let file = self.file;
        self.writeback.finish()?;
        file.sync_all()
    }
}

impl io::Write for SyncedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&mut &*self.file).write(buf)?;
        self.writeback.wrote(self.file, n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_large_file_is_synced_in_the_background_and_finishes_clean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        let mut wb = Writeback::new();
        let chunk = vec![5u8; 1 << 20];
        for _ in 0..40 {
            file.write_all(&chunk).unwrap();
            wb.wrote(&file, chunk.len() as u64);
        }
        assert!(wb.worker.is_some(), "40 MiB start the background syncs");
        wb.finish().unwrap();
        file.sync_all().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 40 << 20);
    }

    #[test]
    fn a_synced_writer_writes_everything_and_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut w = SyncedWriter::new(&file);
        let chunk = vec![9u8; 3 << 20];
        for _ in 0..7 {
            w.write_all(&chunk).unwrap();
        }
        assert!(w.writeback.worker.is_some());
        w.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 21 << 20);
    }

    #[test]
    fn a_small_file_starts_no_thread() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let mut wb = Writeback::new();
        wb.wrote(&file, STEP - 1);
        assert!(wb.worker.is_none());
        wb.finish().unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_background_sync_is_returned_by_finish() {
        // A pipe cannot be synced: fsync fails with EINVAL.
        let (reader, writer) = std::io::pipe().unwrap();
        let file = File::from(std::os::fd::OwnedFd::from(writer));
        let mut wb = Writeback::new();
        wb.wrote(&file, STEP);
        let err = wb.finish().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(22), "{err}");
        drop(reader);
    }
}

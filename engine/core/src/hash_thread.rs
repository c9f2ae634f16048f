//! SHA-256 on a thread of its own, fed with the buffers a transfer has
//! just written, so that hashing overlaps receiving and writing instead of
//! following each of them. Buffers go round a small pool: the caller takes
//! one ([`HashThread::buffer`]), fills and writes it, and hands it over
//! ([`HashThread::hash`]); the thread hashes it and gives it back. The
//! digest of everything handed over so far is [`HashThread::digest`]; the
//! state survives it, so a transfer that resumes goes on hashing.

use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// Buffers in the pool: one being filled, one being hashed, one queued.
const POOL: usize = 3;

enum Message {
    /// Hash the first `len` bytes of the buffer, then return it.
    Data(Vec<u8>, usize),
    /// Start again from nothing.
    Reset,
    /// Send the digest of what was hashed so far.
    Digest(Sender<[u8; 32]>),
}

/// A hashing thread and its buffer pool.
#[derive(Debug)]
pub struct HashThread {
    work: Option<SyncSender<Message>>,
    free: Receiver<Vec<u8>>,
    /// A buffer that could not be handed over (the thread is gone), kept
    /// for the next fill.
    spare: Option<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
    chunk: usize,
}

impl HashThread {
    /// A thread going on from `state`, with buffers of `chunk` bytes.
    /// Fails only when no thread can be started.
    pub fn start(state: Sha256, chunk: usize) -> std::io::Result<Self> {
        let (work, jobs) = sync_channel::<Message>(POOL);
        let (give_back, free) = channel();
        for _ in 0..POOL {
            // The receiver is ours: this cannot fail.
            let _ = give_back.send(vec![0u8; chunk]);
        }
        let thread = std::thread::Builder::new()
            .name("upkeep-sha256".into())
            .spawn(move || run(state, &jobs, &give_back))?;
        Ok(Self {
            work: Some(work),
            free,
            spare: None,
            thread: Some(thread),
            chunk,
        })
    }

    /// A buffer to fill (waits for one to come back from the thread).
    pub fn buffer(&mut self) -> Vec<u8> {
        if let Some(b) = self.spare.take() {
            return b;
        }
        self.free.recv().unwrap_or_else(|_| vec![0u8; self.chunk])
    }

    /// Hands over the first `len` bytes of `buffer` to be hashed.
    pub fn hash(&mut self, buffer: Vec<u8>, len: usize) {
        if let Some(work) = &self.work
            && let Err(e) = work.send(Message::Data(buffer, len))
            && let Message::Data(b, _) = e.0
        {
            self.spare = Some(b);
        }
    }

    /// Returns a buffer that was not filled after all.
    pub fn give_back(&mut self, buffer: Vec<u8>) {
        self.spare = Some(buffer);
    }

    /// Forgets everything hashed so far.
    pub fn reset(&mut self) {
        if let Some(work) = &self.work {
            let _ = work.send(Message::Reset);
        }
    }

    /// The SHA-256 of everything handed over since the start (or the last
    /// reset), once the thread has hashed it. `None` if the thread died.
    pub fn digest(&mut self) -> Option<[u8; 32]> {
        let (reply, answer) = channel();
        self.work.as_ref()?.send(Message::Digest(reply)).ok()?;
        answer.recv().ok()
    }
}

impl Drop for HashThread {
    fn drop(&mut self) {
        self.work.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(mut state: Sha256, jobs: &Receiver<Message>, give_back: &Sender<Vec<u8>>) {
    for message in jobs {
        match message {
            Message::Data(buffer, len) => {
                state.update(&buffer[..len.min(buffer.len())]);
                // The pool's owner may be gone; then the buffer is dropped.
                let _ = give_back.send(buffer);
            }
            Message::Reset => state = Sha256::new(),
            Message::Digest(reply) => {
                let _ = reply.send(state.clone().finalize().into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_one_of_every_byte_handed_over_in_order() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut prefix = Sha256::new();
        prefix.update(&data[..1000]);
        let mut h = HashThread::start(prefix, 4096).unwrap();
        for piece in data[1000..].chunks(3001) {
            let mut b = h.buffer();
            b[..piece.len().min(4096)].copy_from_slice(&piece[..piece.len().min(4096)]);
            h.hash(b, piece.len().min(4096));
        }
        let expected: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(h.digest(), Some(expected));
        // The state survives a digest: more bytes go on from it.
        let mut b = h.buffer();
        b[0] = 42;
        h.hash(b, 1);
        let mut all = data.clone();
        all.push(42);
        assert_eq!(h.digest(), Some(Sha256::digest(&all).into()));
        h.reset();
        assert_eq!(h.digest(), Some(Sha256::digest(b"").into()));
    }
}

//! Delivery bodies at rest (schema 0010): compressed with zstd at its
//! fastest level when that saves at least an eighth, else stored as
//! received; `body_encoding` says which. Readers get the bytes as
//! received either way. Compression runs on the caller's task, not on the
//! writer's thread: the writer is what every accept waits for.

use std::cell::RefCell;

use zstd::bulk::{Compressor, Decompressor};

/// Bodies shorter than this are stored as received (a few hundred bytes
/// gain nothing worth a frame header and the CPU).
const MIN_LEN: usize = 512;

/// zstd's fastest level: ~1 µs per KB here, 4.7× on a GitHub push.
const LEVEL: i32 = 1;

pub(super) const IDENTITY: &str = "identity";
pub(super) const ZSTD: &str = "zstd";

/// The largest body a stored frame may claim to hold (a corrupt frame
/// header must not make a reader allocate gigabytes).
const MAX_DECODED: usize = 256 * 1024 * 1024;

thread_local! {
    // One context per thread, made once: creating a zstd context per body
    // cost more CPU than compressing it (ingest CPU per request +40-65 µs
    // in bench/ingest.sh with a fresh context each time).
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The bytes to store and their encoding.
pub(super) fn encode(body: Vec<u8>) -> (Vec<u8>, &'static str) {
    if body.len() < MIN_LEN {
        return (body, IDENTITY);
    }
    let packed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Compressor::new(LEVEL).ok();
        }
        cell.as_mut().and_then(|c| c.compress(&body).ok())
    });
    match packed {
        Some(packed) if packed.len() <= body.len() - body.len() / 8 => (packed, ZSTD),
        _ => (body, IDENTITY),
    }
}

/// The body as received from what a row holds.
pub(super) fn decode(stored: Vec<u8>, encoding: &str) -> Result<Vec<u8>, String> {
    match encoding {
        IDENTITY => Ok(stored),
        ZSTD => unpack(&stored).map_err(|e| format!("a zstd body that does not decompress: {e}")),
        other => Err(format!("unknown body encoding `{other}`")),
    }
}

fn unpack(frame: &[u8]) -> Result<Vec<u8>, String> {
    // Frames written here carry their content size.
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => usize::try_from(size).map_err(|e| e.to_string())?,
        Ok(None) => return Err("the frame does not say its size".to_owned()),
        Err(e) => return Err(format!("{e:?}")),
    };
    if size > MAX_DECODED {
        return Err(format!("the frame claims {size} bytes"));
    }
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(Decompressor::new().map_err(|e| e.to_string())?);
        }
        match cell.as_mut() {
            Some(d) => d.decompress(frame, size).map_err(|e| e.to_string()),
            None => Err("no decompression context".to_owned()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_repetitive_body_is_stored_compressed_and_read_back_the_same() {
        let body = br#"{"ref":"refs/heads/main","commits":[]}"#.repeat(100);
        let (stored, encoding) = encode(body.clone());
        assert_eq!(encoding, ZSTD);
        assert!(stored.len() < body.len() / 4, "{} bytes", stored.len());
        assert_eq!(decode(stored, encoding), Ok(body));
    }

    #[test]
    fn small_or_incompressible_bodies_are_stored_as_received() {
        let small = b"{\"a\":1}".to_vec();
        assert_eq!(encode(small.clone()), (small, IDENTITY));
        // A pseudo-random body (xorshift) does not compress.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        assert_eq!(encode(noise.clone()), (noise, IDENTITY));
    }

    #[test]
    fn a_corrupt_or_unknown_encoding_is_an_error_not_a_panic() {
        assert!(decode(b"not zstd".to_vec(), ZSTD).is_err());
        assert!(decode(b"x".to_vec(), "brotli").is_err());
    }
}

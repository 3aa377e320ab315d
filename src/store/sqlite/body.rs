//! Delivery bodies at rest: compressed with lz4 (schema 0011) when that
//! saves at least an eighth, else stored as received; `body_encoding` says
//! which. Rows written with zstd (schema 0010) are still read. Readers get
//! the bytes as received either way. Compression runs on the caller's
//! task, not on the writer's thread: the writer is what every accept waits
//! for.
//!
//! Why lz4 and not zstd: on the 7.6 KB GitHub push zstd level 1 stores
//! 1,581 bytes in ~10.6 µs, lz4 2,193 bytes in ~4.3 µs, and reads back 4×
//! faster (1.2 vs 4.7 µs). The 600 bytes more per row cost the writer less
//! than the 6 µs cost every request (docs/PERFORMANCE.md, round four).

use std::cell::RefCell;

use zstd::bulk::Decompressor;

/// Bodies shorter than this are stored as received (a few hundred bytes
/// gain nothing worth the CPU).
const MIN_LEN: usize = 512;

pub(super) const IDENTITY: &str = "identity";
pub(super) const LZ4: &str = "lz4";
pub(super) const ZSTD: &str = "zstd";

/// The largest body a stored frame may claim to hold (a corrupt header must
/// not make a reader allocate gigabytes).
const MAX_DECODED: usize = 256 * 1024 * 1024;

thread_local! {
    // One zstd context per thread, made once (creating one per body cost
    // more than decompressing it).
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The bytes to store and their encoding.
pub(super) fn encode(body: Vec<u8>) -> (Vec<u8>, &'static str) {
    if body.len() < MIN_LEN {
        return (body, IDENTITY);
    }
    // The block format, behind the body's length (4 bytes, little-endian).
    let packed = lz4_flex::block::compress_prepend_size(&body);
    if packed.len() <= body.len() - body.len() / 8 {
        (packed, LZ4)
    } else {
        (body, IDENTITY)
    }
}

/// The body as received from what a row holds.
pub(super) fn decode(stored: Vec<u8>, encoding: &str) -> Result<Vec<u8>, String> {
    match encoding {
        IDENTITY => Ok(stored),
        LZ4 => unlz4(&stored).map_err(|e| format!("an lz4 body that does not decompress: {e}")),
        ZSTD => unzstd(&stored).map_err(|e| format!("a zstd body that does not decompress: {e}")),
        other => Err(format!("unknown body encoding `{other}`")),
    }
}

fn unlz4(block: &[u8]) -> Result<Vec<u8>, String> {
    let Some((size, packed)) = block.split_first_chunk::<4>() else {
        return Err("shorter than its length prefix".to_owned());
    };
    let size = usize::try_from(u32::from_le_bytes(*size)).map_err(|e| e.to_string())?;
    if size > MAX_DECODED {
        return Err(format!("the block claims {size} bytes"));
    }
    let body = lz4_flex::block::decompress(packed, size).map_err(|e| e.to_string())?;
    if body.len() != size {
        return Err(format!(
            "{} bytes where the block claims {size}",
            body.len()
        ));
    }
    Ok(body)
}

fn unzstd(frame: &[u8]) -> Result<Vec<u8>, String> {
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
        assert_eq!(encoding, LZ4);
        assert!(stored.len() < body.len() / 4, "{} bytes", stored.len());
        assert_eq!(decode(stored, encoding), Ok(body));
    }

    #[test]
    fn bodies_stored_with_zstd_before_schema_0011_still_read_back() {
        let body = br#"{"action":"opened","number":7}"#.repeat(40);
        let frame = zstd::bulk::compress(&body, 1).expect("compress");
        assert_eq!(decode(frame, ZSTD), Ok(body));
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
        assert!(
            decode(b"ab".to_vec(), LZ4).is_err(),
            "shorter than the prefix"
        );
        // A prefix claiming 4 GiB is refused before anything is allocated.
        assert!(decode(vec![0xff, 0xff, 0xff, 0xff, 0], LZ4).is_err());
        // A well-formed prefix over a truncated block.
        let (mut stored, encoding) = encode(br#"{"ref":"refs/heads/main"}"#.repeat(50));
        assert_eq!(encoding, LZ4);
        stored.truncate(stored.len() / 2);
        assert!(decode(stored, LZ4).is_err());
    }
}

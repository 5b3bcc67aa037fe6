//! Deterministic file contents: generated from a key, never stored, random-access for `Range`.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// What a file's bytes look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContentKind {
    /// Pseudo-random bytes derived from the key (uploaded files).
    Random,
    /// A small generated PDF document (`Dossier.pdf`).
    Pdf,
    /// A small generated GeoJSON document (`Dossier.geojson`).
    GeoJson,
}

/// The recipe for one version of one file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Content {
    pub(crate) kind: ContentKind,
    pub(crate) key: u64,
    pub(crate) size: u64,
    /// Dossier number, written into generated documents.
    pub(crate) dossier: u64,
}

/// MD5 (base64, as DS reports checksums) and SHA-256 (hex) of a file's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Digests {
    pub(crate) md5_base64: String,
    pub(crate) sha256_hex: String,
}

/// SplitMix64: a good, stateless mix, so any 8-byte word of a file can be computed alone.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes several values into one key.
pub(crate) fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5DEE_CE66_D1CE_5EEDu64, |acc, &p| {
        splitmix64(acc ^ splitmix64(p))
    })
}

/// A tiny deterministic PRNG for building the démarche.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(splitmix64(seed))
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }
    /// Uniform in `lo..=hi` (`lo` when the range is empty).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        match span.checked_add(1) {
            Some(n) => lo + self.next_u64() % n,
            None => self.next_u64(),
        }
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

impl Content {
    /// The generated document for Pdf/GeoJson kinds (small, built whole).
    fn document(&self) -> Option<Vec<u8>> {
        match self.kind {
            ContentKind::Random => None,
            ContentKind::Pdf => Some(
                format!(
                    "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% dsfiles-sim: dossier {} (export {:016x})\ntrailer << /Root 1 0 R >>\n%%EOF\n",
                    self.dossier, self.key
                )
                .into_bytes(),
            ),
            ContentKind::GeoJson => Some(
                format!(
                    "{{\"type\":\"FeatureCollection\",\"properties\":{{\"dossier\":{},\"export\":\"{:016x}\"}},\"features\":[{{\"type\":\"Feature\",\"geometry\":{{\"type\":\"Point\",\"coordinates\":[2.35,48.85]}},\"properties\":{{}}}}]}}\n",
                    self.dossier, self.key
                )
                .into_bytes(),
            ),
        }
    }

    /// The number of bytes actually served.
    pub(crate) fn len(&self) -> u64 {
        match self.document() {
            Some(doc) => doc.len() as u64,
            None => self.size,
        }
    }

    /// Writes the bytes at `offset..offset + out.len()` into `out` (clamped to the file's end).
    pub(crate) fn fill(&self, offset: u64, out: &mut [u8]) -> usize {
        let len = self.len();
        if offset >= len {
            return 0;
        }
        let n = usize::try_from((len - offset).min(out.len() as u64)).unwrap_or(out.len());
        if let Some(doc) = self.document() {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            out[..n].copy_from_slice(&doc[start..start + n]);
            return n;
        }
        let mut pos = offset;
        let mut written = 0;
        while written < n {
            let word = splitmix64(self.key ^ (pos / 8).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let bytes = word.to_le_bytes();
            let in_word = (pos % 8) as usize;
            let take = (8 - in_word).min(n - written);
            out[written..written + take].copy_from_slice(&bytes[in_word..in_word + take]);
            written += take;
            pos += take as u64;
        }
        n
    }

    /// Streams the whole content through MD5 and SHA-256.
    pub(crate) fn digests(&self) -> Digests {
        let mut md5 = Md5::new();
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut offset = 0;
        loop {
            let n = self.fill(offset, &mut buf);
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
            sha.update(&buf[..n]);
            offset += n as u64;
        }
        Digests {
            md5_base64: base64::engine::general_purpose::STANDARD.encode(md5.finalize()),
            sha256_hex: hex::encode(sha.finalize()),
        }
    }
}

/// A checksum that is wrong but well-formed (base64 of 16 bytes), stable for a given true one.
pub(crate) fn wrong_checksum(true_md5_base64: &str) -> String {
    let digest = Md5::digest(format!("wrong:{true_md5_base64}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(size: u64) -> Content {
        Content {
            kind: ContentKind::Random,
            key: 7,
            size,
            dossier: 1,
        }
    }

    #[test]
    fn fill_is_random_access() {
        let c = random(1000);
        let mut whole = vec![0u8; 1000];
        assert_eq!(c.fill(0, &mut whole), 1000);
        for (offset, len) in [(0u64, 3usize), (5, 17), (993, 100), (8, 8), (999, 1)] {
            let mut part = vec![0u8; len];
            let n = c.fill(offset, &mut part);
            let start = offset as usize;
            let end = (start + len).min(1000);
            assert_eq!(&part[..n], &whole[start..end], "offset {offset} len {len}");
        }
        assert_eq!(c.fill(1000, &mut [0u8; 4]), 0);
    }

    #[test]
    fn empty_file_has_the_md5_of_nothing() {
        assert_eq!(random(0).digests().md5_base64, "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[test]
    fn different_keys_give_different_bytes() {
        let a = random(64).digests();
        let b = Content {
            key: 8,
            ..random(64)
        }
        .digests();
        assert_ne!(a, b);
        assert_ne!(wrong_checksum(&a.md5_base64), a.md5_base64);
    }

    #[test]
    fn generated_documents_have_their_own_length() {
        let pdf = Content {
            kind: ContentKind::Pdf,
            key: 1,
            size: 0,
            dossier: 42,
        };
        assert!(pdf.len() > 0);
        let mut buf = vec![0u8; pdf.len() as usize];
        pdf.fill(0, &mut buf);
        assert!(buf.starts_with(b"%PDF-"));
    }
}

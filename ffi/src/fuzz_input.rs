//! Generated input shared by the client's fuzz targets (`sse::fuzz`, `http::fuzz`):
//! a byte stream assembled from a target's protocol tokens, single bytes, long runs
//! and raw bytes, and the ways a socket may deliver it.

use bolero::{produce_with, TypeGenerator};

#[derive(Clone, Debug, TypeGenerator)]
pub(crate) enum Piece {
    /// One of the target's tokens (the index wraps).
    Token(u8),
    Byte(u8),
    /// A long stretch without a line end; long enough to cross every limit.
    Run(u8, u16),
    Raw(#[generator(produce_with::<Vec<u8>>().len(0usize..16))] Vec<u8>),
}

#[derive(Clone, Debug, TypeGenerator)]
pub(crate) struct Wire {
    #[generator(produce_with::<Vec<Piece>>().len(0usize..40))]
    pieces: Vec<Piece>,
    /// Where to cut the bytes into reads (wrapped to the length; repeats give empty
    /// reads).
    #[generator(produce_with::<Vec<u16>>().len(0usize..12))]
    cuts: Vec<u16>,
}

impl Wire {
    pub(crate) fn bytes(&self, tokens: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Token(i) => out.extend_from_slice(tokens[*i as usize % tokens.len()]),
                Piece::Byte(b) => out.push(*b),
                Piece::Run(b, n) => out.extend(std::iter::repeat_n(*b, *n as usize)),
                Piece::Raw(bytes) => out.extend_from_slice(bytes),
            }
        }
        out
    }

    /// The ways to feed `bytes`: whole, cut at the generated places, and byte by byte
    /// when that stays cheap (the parsers rescan a pending line on every read).
    pub(crate) fn feedings<'a>(&self, bytes: &'a [u8]) -> Vec<Vec<&'a [u8]>> {
        let mut at: Vec<usize> = self
            .cuts
            .iter()
            .map(|&c| c as usize % (bytes.len() + 1))
            .collect();
        at.sort_unstable();
        at.push(bytes.len());
        let mut start = 0;
        let cut = at
            .into_iter()
            .map(|end| {
                let piece = &bytes[start..end];
                start = end;
                piece
            })
            .collect();
        let mut ways = vec![vec![bytes], cut];
        if bytes.len() <= 4096 {
            ways.push(bytes.chunks(1).collect());
        }
        ways
    }
}

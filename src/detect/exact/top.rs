//! Each query's running top-k ([`Top`]) and the tiled scan that feeds it ([`offer_tiles`]),
//! shared by the exact search, the inverted file in memory and the inverted file on disk
//! ([`crate::stream::ivf`]).

use super::products;

/// One query's k nearest rows so far: a sorted list of (distance less the query's own norm,
/// row), kept at k entries (k is small, so insertion beats a heap). The query's own norm is the
/// same for every candidate, so it is left out of the comparison. Equal distances go to the
/// lower row, whatever order rows are seen in.
pub(crate) struct Top {
    query: usize,
    k: usize,
    items: Vec<(f32, u32)>,
    /// The k-th entry once the list is full; a candidate must come before it.
    worst: (f32, u32),
}

impl Top {
    /// An empty list for the query whose own row is `query` (`usize::MAX`: none).
    pub(crate) fn new(k: usize, query: usize) -> Self {
        Top {
            query,
            k,
            items: Vec::with_capacity(k + 1),
            worst: (f32::INFINITY, u32::MAX),
        }
    }

    /// The rows found, nearest first; `u32::MAX` where fewer than `k` were offered. A
    /// query's own row (`query`) is never one of them.
    pub(crate) fn list(&self) -> impl Iterator<Item = u32> + '_ {
        let missing = self.k - self.items.len();
        self.items
            .iter()
            .map(|&(_, j)| j)
            .chain(std::iter::repeat_n(u32::MAX, missing))
    }

    /// The squared distance to the k-th row so far (infinite until k rows are in), given
    /// the query's own squared norm.
    pub(crate) fn kth(&self, query_norm: f32) -> f32 {
        self.worst.0 + query_norm
    }

    /// Takes in the rows `ids`, given the query's dot products with them and their squared
    /// norms.
    pub(crate) fn scan(&mut self, products: &[f32], norms: &[f32], ids: &[u32]) {
        // Almost every candidate loses to the k-th distance: test 16 at a time, with no
        // dependence between lanes (a running minimum would be a chain of 16 dependent
        // steps, which made this loop cost as much as the products), and look closer only
        // when one can win.
        const LANES: usize = 16;
        let whole = products.len() / LANES * LANES;
        let mut distances = [0f32; LANES];
        for ((g, norm), ids) in products[..whole]
            .chunks_exact(LANES)
            .zip(norms.chunks_exact(LANES))
            .zip(ids.chunks_exact(LANES))
        {
            let bar = self.worst.0;
            let mut hit = false;
            for ((d, &g), &norm) in distances.iter_mut().zip(g).zip(norm) {
                *d = norm - 2.0 * g;
                hit |= *d <= bar;
            }
            if hit {
                self.take(&distances, ids);
            }
        }
        let rest = products.len() - whole;
        for ((d, &g), &norm) in distances
            .iter_mut()
            .zip(&products[whole..])
            .zip(&norms[whole..])
        {
            *d = norm - 2.0 * g;
        }
        self.take(&distances[..rest], &ids[whole..]);
    }

    /// Takes in the candidates `distances` (less the query's norm) of rows `ids` that come
    /// before the k-th so far.
    fn take(&mut self, distances: &[f32], ids: &[u32]) {
        for (&d, &j) in distances.iter().zip(ids) {
            let before = d < self.worst.0 || (d == self.worst.0 && j < self.worst.1);
            if !before || j as usize == self.query {
                continue;
            }
            let at = self.items.partition_point(|&e| e < (d, j));
            self.items.insert(at, (d, j));
            self.items.truncate(self.k);
            if self.items.len() == self.k {
                self.worst = self.items[self.k - 1];
            }
        }
    }
}

/// Queries a tile of [`offer_tiles`]: with [`ROW_TILE`] rows, 2 MiB of f32 products, which
/// stay in the cache while the tops read them.
const QUERY_TILE: usize = 256;
/// Rows a tile of [`offer_tiles`].
const ROW_TILE: usize = 2048;

/// Offers the rows `rows` (row-major, `d` wide; original numbers `ids`, squared norms `norms`)
/// to the tops of the queries `which` (row numbers of `queries`, `d` wide), one product of at
/// most [`QUERY_TILE`] x [`ROW_TILE`] at a time, single-threaded (the caller is one of rayon's
/// tasks). `gathered` and `out` are the caller's buffers, reused from call to call. A product
/// over every pair at once would be `which.len() x rows` values: at thousands of queries and
/// rows, tens of MiB written to memory and read back, which cost more than the arithmetic.
#[allow(clippy::too_many_arguments)]
pub(crate) fn offer_tiles(
    tops: &mut [Top],
    which: &[u32],
    queries: &[f32],
    rows: &[f32],
    norms: &[f32],
    ids: &[u32],
    d: usize,
    gathered: &mut Vec<f32>,
    out: &mut Vec<f32>,
) {
    debug_assert!(rows.len() == ids.len() * d && norms.len() == ids.len());
    for block in which.chunks(QUERY_TILE) {
        gathered.clear();
        for &q in block {
            gathered.extend_from_slice(&queries[q as usize * d..(q as usize + 1) * d]);
        }
        for ((tile, ids), norms) in rows
            .chunks(ROW_TILE * d)
            .zip(ids.chunks(ROW_TILE))
            .zip(norms.chunks(ROW_TILE))
        {
            let size = ids.len();
            out.resize(block.len() * size, 0.0);
            products(out, gathered, tile, block.len(), size, d, false);
            for (&q, dots) in block.iter().zip(out.chunks(size)) {
                tops[q as usize].scan(dots, norms, ids);
            }
        }
    }
}

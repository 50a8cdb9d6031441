//! The model file: a forest plus a JSON header, as plain bytes that load without executing
//! anything (unlike the pickles sst1mpipe writes).
//!
//! Layout (little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `SST1MRF\n` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 4 + n | header length, header (UTF-8 JSON object: features, classes, training record…) |
//! | 1 + 4 + 4 | task (0 regression, 1 classification), number of features, number of trees |
//! | per tree | node count, then 12 bytes per node: feature (`u32::MAX` = leaf), value (f32), right child |
//! | 32 | SHA-256 of everything before |
//!
//! Decoding checks everything a prediction relies on: the digest (a truncated or altered file
//! is refused, with what was found), the version, and every node (features in range, children
//! after their parent and inside the tree, finite values), so a loaded model can never index
//! out of bounds or loop.
use super::{Forest, Node, Task, Tree, LEAF};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"SST1MRF\n";
pub const FORMAT_VERSION: u32 = 1;

pub fn encode(forest: &Forest, header: &serde_json::Value) -> Vec<u8> {
    let header = serde_json::to_vec(header).expect("JSON values serialise");
    let mut out = Vec::with_capacity(64 + header.len() + forest.n_nodes() * 12 + forest.trees.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.push(match forest.task {
        Task::Regression => 0,
        Task::Classification => 1,
    });
    out.extend_from_slice(&(forest.n_features as u32).to_le_bytes());
    out.extend_from_slice(&(forest.trees.len() as u32).to_le_bytes());
    for tree in &forest.trees {
        out.extend_from_slice(&(tree.nodes.len() as u32).to_le_bytes());
        for n in &tree.nodes {
            out.extend_from_slice(&n.feature.to_le_bytes());
            out.extend_from_slice(&n.value.to_le_bytes());
            out.extend_from_slice(&n.right.to_le_bytes());
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "truncated: {what} at byte {} needs {n} bytes, {} remain",
                self.at,
                self.bytes.len() - self.at
            ));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
}

/// Decodes a model file's bytes into its header and forest.
pub fn decode(bytes: &[u8]) -> Result<(serde_json::Value, Forest), String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not an sst1mflow model file (bad magic bytes)".into());
    }
    if bytes.len() < MAGIC.len() + 4 + 32 {
        return Err(format!("truncated: {} bytes", bytes.len()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(format!("model format version {version}; this sst1mflow reads version {FORMAT_VERSION}"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(format!("checksum mismatch: the file ({} bytes) is truncated or corrupted", bytes.len()));
    }
    let mut c = Cursor { bytes: body, at: 12 };
    let header_len = c.u32("header length")? as usize;
    let header: serde_json::Value =
        serde_json::from_slice(c.take(header_len, "header")?).map_err(|e| format!("header is not JSON: {e}"))?;
    if !header.is_object() {
        return Err("header is not a JSON object".into());
    }
    let task = match c.take(1, "task")?[0] {
        0 => Task::Regression,
        1 => Task::Classification,
        t => return Err(format!("unknown task code {t}")),
    };
    let n_features = c.u32("feature count")? as usize;
    let n_trees = c.u32("tree count")? as usize;
    if n_features == 0 || n_trees == 0 {
        return Err(format!("{n_features} features, {n_trees} trees: an empty model"));
    }
    let mut trees = Vec::with_capacity(n_trees.min(100_000));
    for t in 0..n_trees {
        let n_nodes = c.u32("node count")? as usize;
        let raw = c.take(n_nodes.checked_mul(12).ok_or("node count overflows")?, "tree nodes")?;
        let mut nodes = Vec::with_capacity(n_nodes);
        for (i, b) in raw.chunks_exact(12).enumerate() {
            let feature = u32::from_le_bytes(b[0..4].try_into().expect("4"));
            let value = f32::from_le_bytes(b[4..8].try_into().expect("4"));
            let right = u32::from_le_bytes(b[8..12].try_into().expect("4"));
            let bad = |why: &str| format!("tree {t}, node {i}: {why}");
            if !value.is_finite() {
                return Err(bad("value is not finite"));
            }
            if feature != LEAF {
                if feature as usize >= n_features {
                    return Err(bad(&format!("feature {feature} of {n_features}")));
                }
                if i + 1 >= n_nodes || right as usize <= i + 1 || right as usize >= n_nodes {
                    return Err(bad(&format!("children {} and {right} not inside the tree after it", i + 1)));
                }
            }
            nodes.push(Node { feature, value, right });
        }
        if nodes.is_empty() {
            return Err(format!("tree {t} has no nodes"));
        }
        trees.push(Tree { nodes });
    }
    if c.at != body.len() {
        return Err(format!("{} unexpected bytes after the last tree", body.len() - c.at));
    }
    Ok((header, Forest { task, n_features, trees }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn forest() -> Forest {
        let tree = Tree {
            nodes: vec![
                Node { feature: 1, value: 0.5, right: 2 },
                Node { feature: LEAF, value: -1.0, right: 0 },
                Node { feature: LEAF, value: 2.0, right: 0 },
            ],
        };
        Forest { task: Task::Regression, n_features: 2, trees: vec![tree.clone(), tree] }
    }

    #[test]
    fn round_trip_is_exact() {
        let bytes = encode(&forest(), &json!({"features": ["a", "b"]}));
        let (h, f) = decode(&bytes).unwrap();
        assert_eq!(f, forest());
        assert_eq!(h["features"][1], "b");
        assert_eq!(f.predict_row(&[0.0, 0.7]), 2.0);
    }

    #[test]
    fn truncation_corruption_and_versions_are_refused() {
        let bytes = encode(&forest(), &json!({}));
        assert!(decode(&bytes[..bytes.len() - 5]).unwrap_err().contains("checksum"));
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(decode(&flipped).unwrap_err().contains("checksum"));
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(decode(&v2).unwrap_err().contains("version 2"));
        assert!(decode(b"\x89HDF\r\n\x1a\n").unwrap_err().contains("magic"));
        assert!(decode(&bytes[..10]).unwrap_err().contains("truncated"));
    }

    #[test]
    fn a_node_pointing_backwards_is_refused_even_with_a_valid_checksum() {
        let mut f = forest();
        f.trees[0].nodes[0].right = 0;
        let bytes = encode(&f, &json!({}));
        assert!(decode(&bytes).unwrap_err().contains("tree 0, node 0"));
    }
}

//! Small text helpers shared by every parser that must reject unknown names helpfully.

/// Edit distance (Damerau–Levenshtein, optimal string alignment) between two strings.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[n][m]
}

/// The closest candidate to `word`, if it is close enough to be a plausible misspelling.
pub fn closest<'a, I: IntoIterator<Item = &'a str>>(word: &str, candidates: I) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// `; did you mean "x"?` or, failing that, the list of valid names.
pub fn suggestion<'a, I: IntoIterator<Item = &'a str> + Clone>(word: &str, candidates: I) -> String {
    match closest(word, candidates.clone()) {
        Some(c) => format!("; did you mean \"{c}\"?"),
        None => {
            let all: Vec<&str> = candidates.into_iter().collect();
            if all.is_empty() {
                String::new()
            } else {
                format!("; expected one of: {}", all.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(closest("foreahc", ["foreach", "inputs", "stage"]), Some("foreach"));
        assert_eq!(closest("Stage", ["foreach", "inputs", "stage"]), Some("stage"));
        assert_eq!(closest("zzzzzz", ["foreach", "inputs"]), None);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert!(suggestion("qq", ["a1", "b1"]).contains("expected one of"));
    }
}

/// The first `n` bytes of `s` for display (a hash or key prefix), or all of `s` when it is
/// shorter or `n` falls inside a character: strings read from files or the database may be
/// anything, and showing one must never panic.
pub fn short(s: &str, n: usize) -> &str {
    s.get(..n).unwrap_or(s)
}

#[cfg(test)]
mod short_tests {
    use super::short;

    #[test]
    fn prefixes_never_panic() {
        assert_eq!(short("abcdef0123456789", 12), "abcdef012345");
        assert_eq!(short("ab", 12), "ab");
        assert_eq!(short("", 16), "");
        // A multi-byte character across the cut: the whole string rather than a panic.
        assert_eq!(short("aé", 2), "aé");
    }
}

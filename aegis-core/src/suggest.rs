//! "Did you mean …?" suggestions for unknown keys, operators and fields.

/// The candidate closest to `word`, if one is close enough to be a likely typo:
/// the same after trimming and lower-casing both, or within an edit distance of 2 (1
/// for words of up to 4 characters) of each other lower-cased — so a camelCase
/// candidate (`stateTimeoutMs`) is found for `stateTimoutMs` as its snake_case
/// spelling is for `state_timout_ms`.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let norm = word.trim().to_lowercase();
    let max = if norm.chars().count() <= 4 { 1 } else { 2 };
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let folded = c.to_lowercase();
        if folded == norm {
            return Some(c);
        }
        let d = distance(&norm, &folded);
        if d <= max && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    let at = |i: usize, j: usize| i * w + j;
    for i in 0..=a.len() {
        if let Some(x) = d.get_mut(at(i, 0)) {
            *x = i;
        }
    }
    for j in 0..=b.len() {
        if let Some(x) = d.get_mut(at(0, j)) {
            *x = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let ca = a.get(i - 1);
            let cb = b.get(j - 1);
            let cost = usize::from(ca != cb);
            let get = |i, j| d.get(at(i, j)).copied().unwrap_or(usize::MAX / 2);
            let mut v = (get(i - 1, j) + 1).min(get(i, j - 1) + 1).min(get(i - 1, j - 1) + cost);
            if i > 1 && j > 1 && ca == b.get(j - 2) && a.get(i - 2) == cb {
                v = v.min(get(i - 2, j - 2) + 1);
            }
            if let Some(x) = d.get_mut(at(i, j)) {
                *x = v;
            }
        }
    }
    d.get(at(a.len(), b.len())).copied().unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_typos() {
        let ops = ["lt", "lte", "gt", "gte", "eq", "matches", "within"];
        assert_eq!(closest("lte ", ops), Some("lte"));
        assert_eq!(closest("LTE", ops), Some("lte"));
        assert_eq!(closest("mathces", ops), Some("matches"));
        assert_eq!(closest("wihtin", ops), Some("within"));
        assert_eq!(closest("banana", ops), None);
        let camel = ["stateTimeoutMs", "stateStaleMs", "fsync"];
        assert_eq!(closest("stateTimoutMs", camel), Some("stateTimeoutMs"));
        assert_eq!(closest("STATESTALEMS", camel), Some("stateStaleMs"));
    }
}

//! Where in a scenario's text a problem is: the line and column of a byte offset, and the line
//! of a dotted field path (`adversary[1].members`) for semantic errors.

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// The line of a dotted field path such as `adversary[1].members` or `network.threshold`:
/// follows table headers (counting `[[array]]` entries) and then finds the key. 0 if not found.
pub(super) fn locate(text: &str, field: &str) -> usize {
    let mut segments: Vec<(String, Option<usize>)> = Vec::new();
    for seg in field.split('.') {
        match seg.split_once('[') {
            Some((name, rest)) => {
                let idx = rest.trim_end_matches(']').parse().ok();
                segments.push((name.to_string(), idx));
            }
            None => segments.push((seg.to_string(), None)),
        }
    }
    let Some((last, _)) = segments.last().cloned() else {
        return 0;
    };
    // The header path (all but the last segment, unless the last is an array entry).
    let header: Vec<(String, Option<usize>)> = if segments.last().is_some_and(|s| s.1.is_some()) {
        segments.clone()
    } else {
        segments[..segments.len() - 1].to_vec()
    };
    let header_name = header
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(".");
    let wanted_index = header.last().and_then(|h| h.1);
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut in_target = header.is_empty();
    let mut target_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let current = name.trim().to_string();
            let c = counts.entry(current.clone()).or_insert(0);
            in_target = current == header_name && wanted_index == Some(*c);
            *c += 1;
            if in_target {
                target_line = i + 1;
                if segments.last().is_some_and(|s| s.1.is_some()) {
                    return target_line;
                }
            }
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            in_target = name.trim() == header_name && wanted_index.is_none();
            if in_target {
                target_line = i + 1;
            }
            continue;
        }
        if in_target {
            let key = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if key == last {
                return i + 1;
            }
        }
    }
    target_line
}

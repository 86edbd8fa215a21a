//! Which field of a JSON document a parse error points at ("process.ioPriority.class"),
//! so a config.json error names the field as well as its line and column.

/// The dotted path of the value at 1-based `line`/`column` of `text` (serde_json's error
/// position), or None at the top level or past the end.
pub fn path_at(text: &[u8], line: usize, column: usize) -> Option<String> {
    let end = offset(text, line, column)?;
    enum Frame {
        Obj { key: Option<String>, want_key: bool },
        Arr(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        match text[i] {
            b'{' => stack.push(Frame::Obj {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Arr(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Arr(n)) => *n += 1,
                Some(Frame::Obj { want_key, .. }) => *want_key = true,
                None => {}
            },
            b':' => {
                if let Some(Frame::Obj { want_key, .. }) = stack.last_mut() {
                    *want_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Obj {
                    key,
                    want_key: true,
                }) = stack.last_mut()
                {
                    *key = Some(String::from_utf8_lossy(&text[start..i.min(text.len())]).into());
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for f in &stack {
        match f {
            Frame::Obj { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Obj { key: None, .. } => {}
            Frame::Arr(n) => path.push_str(&format!("[{n}]")),
        }
    }
    (!path.is_empty()).then_some(path)
}

/// Byte offset just past 1-based (`line`, `column`).
fn offset(text: &[u8], line: usize, column: usize) -> Option<usize> {
    let mut start = 0;
    for _ in 1..line {
        start += text.get(start..)?.iter().position(|&b| b == b'\n')? + 1;
    }
    Some((start + column).min(text.len()))
}

#[cfg(test)]
mod tests {
    use super::path_at;

    #[test]
    fn finds_the_field() {
        let t = br#"{"process": {"args": ["a", "b"], "ioPriority": {"class": "X"}}}"#;
        let col = t.windows(3).position(|w| w == b"\"X\"").unwrap() + 3;
        assert_eq!(
            path_at(t, 1, col).as_deref(),
            Some("process.ioPriority.class")
        );
        let col = t.windows(3).position(|w| w == b"\"b\"").unwrap() + 3;
        assert_eq!(path_at(t, 1, col).as_deref(), Some("process.args[1]"));
        let t = b"{\n \"a\": {\"k\\\"x\": 1},\n \"b\": [1, {\"c\": 2}]\n}";
        assert_eq!(path_at(t, 3, 16).as_deref(), Some("b[1].c"));
        assert_eq!(path_at(t, 1, 1), None);
    }
}

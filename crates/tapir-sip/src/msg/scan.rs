//! Lexical helpers shared by the header and URI parsers: character classes
//! of RFC 3261 §25, whitespace skipping, quoted strings, comma splitting and
//! generic `;name=value` parameter lists.
//!
//! Every function works on byte offsets of ASCII delimiters and slices with
//! `str::get`, so no input can make it panic.

/// The byte classes of RFC 3261 §25.1 the scanner asks about, one table
/// lookup each (these run for every byte of every header parameter).
const TOKEN: u8 = 1;
const WORD: u8 = 2;
const PARAM_VALUE: u8 = 4;

const fn byte_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut byte = 0usize;
    while byte < 256 {
        let b = byte as u8;
        let token = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        let word_extra = matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        );
        let mut class = 0;
        if token {
            class |= TOKEN | WORD | PARAM_VALUE;
        }
        if word_extra {
            class |= WORD;
        }
        if matches!(b, b':' | b'[' | b']') {
            class |= PARAM_VALUE;
        }
        table[byte] = class;
        byte += 1;
    }
    table
}

static BYTE_CLASSES: [u8; 256] = byte_classes();

/// `token` characters of RFC 3261 §25.1.
#[inline]
pub(crate) fn is_token_byte(byte: u8) -> bool {
    BYTE_CLASSES[usize::from(byte)] & TOKEN != 0
}

/// True when `text` is a non-empty `token`.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_byte)
}

/// `word` characters (Call-ID) of RFC 3261 §25.1.
#[inline]
pub(crate) fn is_word_byte(byte: u8) -> bool {
    BYTE_CLASSES[usize::from(byte)] & WORD != 0
}

/// Space or horizontal tab (line folding has already been removed).
#[inline]
pub(crate) fn is_wsp(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Index of the first non-whitespace byte at or after `from`.
pub(crate) fn skip_wsp(text: &str, from: usize) -> usize {
    let bytes = text.as_bytes();
    let mut index = from;
    while bytes.get(index).is_some_and(|b| is_wsp(*b)) {
        index += 1;
    }
    index
}

/// `text` without leading and trailing spaces and tabs.
pub(crate) fn trim_wsp(text: &str) -> &str {
    text.trim_matches(|c| c == ' ' || c == '\t')
}

/// Given `text[start] == '"'`, the index just past the closing quote, or
/// `None` when the quoted string is not terminated.
pub(crate) fn quoted_string_end(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.get(start) != Some(&b'"') {
        return None;
    }
    let mut index = start + 1;
    loop {
        match bytes.get(index)? {
            b'"' => return Some(index + 1),
            b'\\' => {
                // quoted-pair: any octet except CR and LF may follow.
                match bytes.get(index + 1)? {
                    b'\r' | b'\n' => return None,
                    _ => index += 2,
                }
            }
            _ => index += 1,
        }
    }
}

/// Removes the surrounding quotes and the quoted-pair escapes of a quoted
/// string; returns the input unchanged when it is not quoted.
pub(crate) fn unquote(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(inner) = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return std::borrow::Cow::Borrowed(text);
    };
    if !inner.contains('\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Splits a header value at the commas that separate list elements, ignoring
/// commas inside quoted strings and inside `<...>`. Elements are trimmed.
pub(crate) fn split_commas(text: &str) -> CommaSplit<'_> {
    CommaSplit {
        text,
        position: 0,
        done: false,
    }
}

/// The first element of a comma-separated header value (e.g. the top Via
/// of a Via line that holds several).
pub fn first_list_element(value: &str) -> &str {
    split_commas(value)
        .next()
        .and_then(Result::ok)
        .unwrap_or(value)
}

/// Iterator returned by [`split_commas`]; yields `Err(())` once for an
/// unterminated quoted string or angle bracket.
pub(crate) struct CommaSplit<'a> {
    text: &'a str,
    position: usize,
    done: bool,
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = Result<&'a str, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let bytes = self.text.as_bytes();
        let start = self.position;
        let mut index = start;
        let mut in_angle = false;
        loop {
            match bytes.get(index) {
                None => {
                    self.done = true;
                    if in_angle {
                        return Some(Err(()));
                    }
                    break;
                }
                Some(b'"') => match quoted_string_end(self.text, index) {
                    Some(end) => index = end,
                    None => {
                        self.done = true;
                        return Some(Err(()));
                    }
                },
                Some(b'<') => {
                    in_angle = true;
                    index += 1;
                }
                Some(b'>') => {
                    in_angle = false;
                    index += 1;
                }
                Some(b',') if !in_angle => {
                    self.position = index + 1;
                    break;
                }
                Some(_) => index += 1,
            }
        }
        let element = self.text.get(start..index).unwrap_or("");
        Some(Ok(trim_wsp(element)))
    }
}

/// One `name[=value]` parameter. `value` keeps quotes when it was quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// Parameter name as written (compare case-insensitively).
    pub name: &'a str,
    /// Raw value, quotes included; `None` for a flag parameter.
    pub value: Option<&'a str>,
}

impl<'a> Param<'a> {
    /// The value without quotes and quoted-pair escapes.
    pub fn unquoted_value(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.value.map(unquote)
    }
}

/// Header parameters (`*( SEMI generic-param )`) kept as their validated
/// source text and read on demand, so parsing allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// The parameter text as received, starting with its first `;` (may be empty).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Iterates over the parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = Param<'a>> + 'a {
        let raw = self.raw;
        let mut position = 0;
        std::iter::from_fn(move || {
            let (param, next) = scan_one_header_param(raw, position).ok()??;
            position = next;
            Some(param)
        })
    }

    /// The first parameter named `name` (case-insensitive): `Some(None)` for
    /// a flag, `Some(Some(value))` for a valued one.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|param| param.name.eq_ignore_ascii_case(name))
            .map(|param| param.value)
    }

    /// True when a parameter named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// True when there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Characters allowed in an unquoted generic-param value (token or host,
/// including IPv6 references).
#[inline]
fn is_param_value_byte(byte: u8) -> bool {
    BYTE_CLASSES[usize::from(byte)] & PARAM_VALUE != 0
}

/// Scans one `SWS ; SWS name [SWS = SWS value]` at `from`. `Ok(None)` when
/// the next non-whitespace byte is not `;`.
fn scan_one_header_param(text: &str, from: usize) -> Result<Option<(Param<'_>, usize)>, ()> {
    let bytes = text.as_bytes();
    let mut index = skip_wsp(text, from);
    if bytes.get(index) != Some(&b';') {
        return Ok(None);
    }
    index = skip_wsp(text, index + 1);
    let name_start = index;
    while bytes.get(index).is_some_and(|b| is_token_byte(*b)) {
        index += 1;
    }
    if index == name_start {
        return Err(());
    }
    let name = text.get(name_start..index).ok_or(())?;
    let after_name = skip_wsp(text, index);
    if bytes.get(after_name) != Some(&b'=') {
        return Ok(Some((Param { name, value: None }, index)));
    }
    index = skip_wsp(text, after_name + 1);
    let value_start = index;
    if bytes.get(index) == Some(&b'"') {
        index = quoted_string_end(text, index).ok_or(())?;
    } else {
        while bytes.get(index).is_some_and(|b| is_param_value_byte(*b)) {
            index += 1;
        }
        if index == value_start {
            return Err(());
        }
    }
    let value = text.get(value_start..index).ok_or(())?;
    Ok(Some((
        Param {
            name,
            value: Some(value),
        },
        index,
    )))
}

/// Scans a run of header parameters starting at `from` and returns them
/// with the index where they end (trailing whitespace not consumed).
pub(crate) fn scan_header_params(text: &str, from: usize) -> Result<(Params<'_>, usize), ()> {
    let mut position = from;
    while let Some((_, next)) = scan_one_header_param(text, position)? {
        position = next;
    }
    let raw = text.get(from..position).ok_or(())?;
    Ok((Params { raw }, position))
}

/// Parses `text` as exactly a parameter list (nothing else may follow).
pub(crate) fn parse_header_params(text: &str) -> Result<Params<'_>, ()> {
    let (params, end) = scan_header_params(text, 0)?;
    if skip_wsp(text, end) == text.len() {
        Ok(params)
    } else {
        Err(())
    }
}

/// Escapes `text` for the user part of a SIP URI (RFC 3261 §25.1 `user`):
/// letters, digits, the marks `-_.!~*'()` and the user-unreserved
/// `&=+$,;?/` stay as they are; every other byte becomes `%XX`, so a
/// canonical number such as `+1 (425) 882-8080` stays one valid URI.
pub fn percent_encode_user(text: &str) -> std::borrow::Cow<'_, str> {
    fn plain(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b)
    }
    if text.bytes().all(plain) {
        return std::borrow::Cow::Borrowed(text);
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() + 8);
    for b in text.bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Decodes `%XX` escapes; malformed escapes are kept literally. The result
/// may hold any byte, NUL included.
pub fn percent_decode(text: &str) -> std::borrow::Cow<'_, [u8]> {
    let bytes = text.as_bytes();
    if memchr::memchr(b'%', bytes).is_none() {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(index + 1).and_then(|b| hex_value(*b)),
                bytes.get(index + 2).and_then(|b| hex_value(*b)),
            )
        {
            out.push(high * 16 + low);
            index += 3;
            continue;
        }
        out.push(byte);
        index += 1;
    }
    std::borrow::Cow::Owned(out)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Parses an unsigned decimal made of digits only (leading zeros allowed),
/// refusing overflow.
pub(crate) fn parse_decimal_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: u64 = 0;
    for byte in text.bytes() {
        value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes_are_rfc_3261s_sets() {
        // RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*"
        // / "_" / "+" / "`" / "'" / "~"); word adds ( ) < > : \ " / [ ] ? { }.
        let token_marks = b"-.!%*_+`'~";
        let word_marks = b"()<>:\\\"/[]?{}";
        for byte in 0..=255u8 {
            let token = byte.is_ascii_alphanumeric() || token_marks.contains(&byte);
            assert_eq!(is_token_byte(byte), token, "token {byte}");
            assert_eq!(
                is_word_byte(byte),
                token || word_marks.contains(&byte),
                "word {byte}"
            );
            assert_eq!(
                is_param_value_byte(byte),
                token || b":[]".contains(&byte),
                "param value {byte}"
            );
        }
    }

    #[test]
    fn params_with_whitespace_and_quotes() {
        let params = parse_header_params(" ;  tag = 98asjd8 ; lr;x=\"a;b\"").unwrap();
        let all: Vec<_> = params.iter().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(params.get("TAG"), Some(Some("98asjd8")));
        assert_eq!(params.get("lr"), Some(None));
        assert_eq!(params.get("x"), Some(Some("\"a;b\"")));
    }

    #[test]
    fn empty_params_are_rejected() {
        assert!(parse_header_params(";;").is_err());
        assert!(parse_header_params(";a=").is_err());
    }

    #[test]
    fn commas_inside_quotes_and_angles_do_not_split() {
        let parts: Vec<_> = split_commas("\"a,b\" <sip:x;y=1,2>, <sip:z>")
            .map(Result::unwrap)
            .collect();
        assert_eq!(parts, vec!["\"a,b\" <sip:x;y=1,2>", "<sip:z>"]);
    }

    #[test]
    fn percent_encode_user_escapes_what_a_user_part_cannot_hold() {
        assert_eq!(percent_encode_user("1003"), "1003");
        assert_eq!(
            percent_encode_user("+1 (425) 882-8080"),
            "+1%20(425)%20882-8080"
        );
        assert_eq!(percent_encode_user("a@b:c%#"), "a%40b%3Ac%25%23");
        assert_eq!(percent_encode_user("ü"), "%C3%BC");
        // What it escapes, percent_decode restores.
        let text = "+1 (425) 882-8080 #x@ü";
        assert_eq!(
            &*percent_decode(&percent_encode_user(text)),
            text.as_bytes()
        );
    }

    #[test]
    fn percent_decode_keeps_nul_and_bad_escapes() {
        assert_eq!(&*percent_decode("a%00b"), b"a\0b");
        assert_eq!(&*percent_decode("%Z%41"), b"%ZA");
    }
}

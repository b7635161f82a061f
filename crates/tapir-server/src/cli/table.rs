//! Plain text tables for the CLI's human output: a header row and
//! left-aligned columns two spaces apart. Written here because it is a dozen
//! lines; a table crate would bring styling and width logic we do not need.

/// A table being filled.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Add a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// The cell `i` of a row, empty when the row is short.
fn cell(r: &[String], i: usize) -> &str {
    r.get(i).map(String::as_str).unwrap_or("")
}

impl Table {
    /// The text, one line per row, ending in a newline.
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let width: Vec<usize> = (0..cols)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| cell(r, i).chars().count())
                    .chain(std::iter::once(self.headers[i].len()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for r in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, w) in width.iter().enumerate() {
                let c = cell(r, i);
                if i + 1 == cols {
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// An optional text, `-` when absent.
pub fn opt(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut t = Table::new(&["ID", "STATE"]);
        t.row(vec!["call-1".into(), "connected".into()]);
        t.row(vec!["call-12".into(), "onhold".into()]);
        assert_eq!(
            t.render(),
            "ID       STATE\ncall-1   connected\ncall-12  onhold\n"
        );
    }
}

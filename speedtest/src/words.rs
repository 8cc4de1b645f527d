//! English number names exactly as speedtest.tcl's `number_name` proc wrote
//! them: `13153` → `thirteen thousand one hundred fifty three`. No "and", no
//! hyphens, `0` → `zero`; above 999 the thousands are named recursively.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = ["", "ten", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/// speedtest.tcl's `number_name $n`.
pub fn number_name(n: u64) -> String {
    let mut n = n;
    let mut txt = String::new();
    if n >= 1000 {
        txt = format!("{} thousand", number_name(n / 1000));
        n %= 1000;
    }
    if n >= 100 {
        txt.push(' ');
        txt.push_str(ONES[(n / 100) as usize]);
        txt.push_str(" hundred");
        n %= 100;
    }
    if n >= 20 {
        txt.push(' ');
        txt.push_str(TENS[(n / 10) as usize]);
        n %= 10;
    }
    if n > 0 {
        txt.push(' ');
        txt.push_str(ONES[n as usize]);
    }
    let txt = txt.trim();
    if txt.is_empty() {
        "zero".to_string()
    } else {
        txt.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::number_name;

    #[test]
    fn names_match_the_seed_rows() {
        let rows = [
            (13153, "thirteen thousand one hundred fifty three"),
            (75560, "seventy five thousand five hundred sixty"),
            (66289, "sixty six thousand two hundred eighty nine"),
            (24322, "twenty four thousand three hundred twenty two"),
            (94142, "ninety four thousand one hundred forty two"),
            (298361, "two hundred ninety eight thousand three hundred sixty one"),
            (447847, "four hundred forty seven thousand eight hundred forty seven"),
            (473330, "four hundred seventy three thousand three hundred thirty"),
        ];
        for (n, name) in rows {
            assert_eq!(number_name(n), name, "number_name({n})");
        }
    }

    #[test]
    fn edge_cases_follow_the_tcl_proc() {
        assert_eq!(number_name(0), "zero");
        assert_eq!(number_name(1), "one");
        assert_eq!(number_name(10), "ten");
        assert_eq!(number_name(19), "nineteen");
        assert_eq!(number_name(20), "twenty");
        assert_eq!(number_name(100), "one hundred");
        assert_eq!(number_name(1000), "one thousand");
        assert_eq!(number_name(1001), "one thousand one");
        assert_eq!(number_name(100_000), "one hundred thousand");
        assert_eq!(number_name(499_999), "four hundred ninety nine thousand nine hundred ninety nine");
        // The Tcl proc has no "million": it recurses on the thousands.
        assert_eq!(number_name(1_000_000), "one thousand thousand");
    }
}

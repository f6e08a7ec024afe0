//! Resource quantities (`k8s.io/apimachinery/pkg/api/resource`, `quantity.go` `ParseQuantity`):
//! enough of them to compare storage requests. The grammar is upstream's
//! (`<signedNumber><suffix>`): a sign, digits with at most one decimal point, then a binary SI
//! suffix (`Ki Mi Gi Ti Pi Ei`, powers of 1024), a decimal SI suffix (`n u m k M G T P E`), a
//! decimal exponent (`e3`, `E-2`) or nothing. The value is kept exactly as a count of
//! nano-units (`i128`), rounded up below a nano-unit as upstream rounds; a value beyond about
//! 10²⁹ units is refused as out of range (upstream keeps it as an arbitrary-precision decimal).

use std::fmt;

use serde_json::Value;

/// The text upstream's error names (`resource.ErrFormatWrong`'s regular expression).
const FORMAT: &str = "quantities must match the regular expression \
                      '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed quantity, ordered by value: `"1Gi" > "1G"`, `"1024Mi" == "1Gi"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

/// A quantity that could not be parsed: the text and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantityError {
    /// The text as given.
    pub text: String,
    /// Upstream's message (`quantities must match the regular expression …`) or `out of range`.
    pub reason: String,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid quantity {:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for QuantityError {}

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    /// Parses `10Gi`, `500Mi`, `1G`, `1.5Ti`, `100m`, `1e3`, `-2k`.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let error = |reason: &str| QuantityError { text: text.to_string(), reason: reason.into() };
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(error(FORMAT));
        }
        let (binary, decimal) = match suffix {
            "" => (0, 0),
            "Ki" => (10, 0),
            "Mi" => (20, 0),
            "Gi" => (30, 0),
            "Ti" => (40, 0),
            "Pi" => (50, 0),
            "Ei" => (60, 0),
            "n" => (0, -9),
            "u" => (0, -6),
            "m" => (0, -3),
            "k" => (0, 3),
            "M" => (0, 6),
            "G" => (0, 9),
            "T" => (0, 12),
            "P" => (0, 15),
            "E" => (0, 18),
            exponent if exponent.starts_with(['e', 'E']) => {
                let digits = &exponent[1..];
                let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
                if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(error(FORMAT));
                }
                let value: i32 = digits.parse().map_err(|_| error("out of range"))?;
                (0, value)
            }
            _ => return Err(error(FORMAT)),
        };
        let out_of_range = || error("out of range");
        let mut mantissa: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(digit - b'0')))
                .ok_or_else(out_of_range)?;
        }
        let mantissa = mantissa.checked_shl(binary).filter(|m| m >> binary == mantissa);
        let mut nanos = mantissa.ok_or_else(out_of_range)?;
        let exponent = i64::from(decimal) + 9 - fraction.len() as i64;
        if exponent >= 0 {
            let scale = 10i128.checked_pow(u32::try_from(exponent).map_err(|_| out_of_range())?);
            nanos = scale.and_then(|s| nanos.checked_mul(s)).ok_or_else(out_of_range)?;
        } else if nanos != 0 {
            // Below a nano-unit: round up, as upstream does.
            let scale = u32::try_from(-exponent).ok().and_then(|e| 10i128.checked_pow(e));
            nanos = match scale {
                Some(scale) => (nanos + scale - 1) / scale,
                None => 1,
            };
        }
        Ok(Quantity { nanos: if negative { -nanos } else { nanos } })
    }

    /// A quantity from JSON: a string (`"10Gi"`) or a number (`10`).
    pub fn from_json(value: &Value) -> Result<Self, QuantityError> {
        match value {
            Value::String(text) => Quantity::parse(text),
            Value::Number(number) => Quantity::parse(&number.to_string()),
            other => Err(QuantityError { text: other.to_string(), reason: FORMAT.to_string() }),
        }
    }

    /// The value in nano-units (`1` is 10⁹).
    pub fn nanos(self) -> i128 {
        self.nanos
    }

    /// The value in whole units, rounded up (`Quantity.Value`): bytes for storage.
    pub fn value(self) -> i128 {
        let units = self.nanos.div_euclid(1_000_000_000);
        if self.nanos.rem_euclid(1_000_000_000) == 0 { units } else { units + 1 }
    }
}

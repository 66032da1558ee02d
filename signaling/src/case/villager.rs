//! The villager's personal data: validation and masking. Names, phones and ID numbers are
//! never logged; the ID number is kept sealed and shown masked.

/// `5108**********1234`: the first and last four characters, the rest starred.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    chars[..4].iter().chain(std::iter::repeat_n(&'*', n - 8)).chain(chars[n - 4..].iter()).collect()
}

/// `王**`: the first character of a name (the family name, as a paper ledger writes it), one
/// star for each of the others.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.trim().chars();
    match chars.next() {
        None => String::new(),
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
    }
}

/// `138****5678`: the first three and last four digits.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len().saturating_sub(4))
            + &chars[chars.len().saturating_sub(4)..].iter().collect::<String>();
    }
    let n = chars.len();
    chars[..3].iter().chain(std::iter::repeat_n(&'*', n - 7)).chain(chars[n - 4..].iter()).collect()
}

/// A resident ID number: 18 characters with a valid ISO 7064 MOD 11-2 check character
/// (upper-cased `X`), or the old 15 digits. `None` if it is not one.
pub fn normalize_id_number(raw: &str) -> Option<String> {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    let b = s.as_bytes();
    match b.len() {
        15 if b.iter().all(u8::is_ascii_digit) => Some(s),
        18 if b[..17].iter().all(u8::is_ascii_digit) => {
            const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
            const CHECK: &[u8; 11] = b"10X98765432";
            let sum: u32 = b[..17].iter().zip(W).map(|(d, w)| u32::from(d - b'0') * w).sum();
            (CHECK[(sum % 11) as usize] == b[17]).then_some(s)
        }
        _ => None,
    }
}

/// A phone number as digits only (spaces, `-` and a leading `+` dropped): 7 to 15 digits.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if !t.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
        return None;
    }
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    (7..=15).contains(&digits.len()).then_some(digits)
}

/// Which field of the villager is not valid, for the error the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadVillager {
    Name,
    Phone,
    IdNumber,
}

impl BadVillager {
    pub fn field(self) -> &'static str {
        match self {
            BadVillager::Name => "name",
            BadVillager::Phone => "phone",
            BadVillager::IdNumber => "id_number",
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            BadVillager::Name => "姓名应为 1-50 个字符",
            BadVillager::Phone => "电话号码应为 7-15 位数字",
            BadVillager::IdNumber => "身份证号码不正确",
        }
    }
}

/// Validated villager details: the name, the phone as digits, the ID number (normalized) if
/// given. `Debug` prints nothing personal.
#[derive(Clone, PartialEq, Eq)]
pub struct Villager {
    pub name: String,
    pub phone: String,
    pub id_number: Option<String>,
}

impl std::fmt::Debug for Villager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Villager { .. }")
    }
}

impl Villager {
    pub fn parse(name: &str, phone: &str, id_number: Option<&str>) -> Result<Villager, BadVillager> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
            return Err(BadVillager::Name);
        }
        let phone = normalize_phone(phone).ok_or(BadVillager::Phone)?;
        let id_number = match id_number.map(str::trim).filter(|s| !s.is_empty()) {
            Some(raw) => Some(normalize_id_number(raw).ok_or(BadVillager::IdNumber)?),
            None => None,
        };
        Ok(Villager { name: name.to_string(), phone, id_number })
    }

    pub fn id_number_masked(&self) -> Option<String> {
        self.id_number.as_deref().map(mask_id_number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_first_character() {
        assert_eq!(mask_name("王五"), "王*");
        assert_eq!(mask_name(" 欧阳明月 "), "欧***");
        assert_eq!(mask_name("李"), "李");
        assert_eq!(mask_name(""), "");
    }

    #[test]
    fn masking() {
        assert_eq!(mask_id_number("51080219800101123X"), "5108**********123X");
        assert_eq!(mask_id_number("510802800101123"), "5108*******1123");
        assert_eq!(mask_id_number("1234"), "****");
        assert_eq!(mask_phone("13800001234"), "138****1234");
        assert_eq!(mask_phone("08391234567"), "083****4567");
        assert_eq!(mask_phone("1234567"), "***4567");
        let masked = mask_id_number("11010519491231002X");
        assert!(!masked.contains("19491231"), "{masked}");
        assert_eq!(masked.chars().count(), 18);
    }

    #[test]
    fn id_numbers_and_phones() {
        assert_eq!(normalize_id_number("11010519491231002x").as_deref(), Some("11010519491231002X"));
        assert_eq!(normalize_id_number(" 110105 19491231002X ").as_deref(), Some("11010519491231002X"));
        assert!(normalize_id_number("110105194912310021").is_none()); // wrong check character
        assert!(normalize_id_number("11010519491231002").is_none());
        assert!(normalize_id_number("1101051949123100AX").is_none());
        assert_eq!(normalize_id_number("110105491231002").as_deref(), Some("110105491231002"));
        assert_eq!(normalize_phone("138-0000 1234").as_deref(), Some("13800001234"));
        assert_eq!(normalize_phone("+86 138 0000 1234").as_deref(), Some("8613800001234"));
        assert!(normalize_phone("12345").is_none());
        assert!(normalize_phone("1380000123a").is_none());
        assert!(normalize_phone("1".repeat(16).as_str()).is_none());
    }

    #[test]
    fn villagers_are_validated_and_not_printed() {
        let v = Villager::parse(" 张三 ", "138 0000 1234", Some("11010519491231002x")).unwrap();
        assert_eq!((v.name.as_str(), v.phone.as_str()), ("张三", "13800001234"));
        assert_eq!(v.id_number_masked().as_deref(), Some("1101**********002X"));
        assert_eq!(format!("{v:?}"), "Villager { .. }");
        assert_eq!(Villager::parse("", "13800001234", None), Err(BadVillager::Name));
        assert_eq!(Villager::parse("张三", "12", None), Err(BadVillager::Phone));
        assert_eq!(Villager::parse("张三", "13800001234", Some("123")), Err(BadVillager::IdNumber));
        assert_eq!(Villager::parse("张三", "13800001234", Some("  ")).unwrap().id_number, None);
    }
}

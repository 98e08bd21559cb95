//! Patched behaviour: short strings that are not UTF-8 parse, keep their octets, and are sent
//! again unchanged.

use amq_protocol_types::{
    AMQPValue, FieldTable, RAW_BYTE_BASE, ShortString, generation::gen_field_table,
    parsing::parse_field_table, parsing::parse_short_string,
};
use cookie_factory::r#gen as cf_gen;

fn wire(bytes: &[u8]) -> Vec<u8> {
    let mut framed = vec![bytes.len() as u8];
    framed.extend_from_slice(bytes);
    framed
}

#[test]
fn octets_that_are_not_utf8_parse_and_round_trip() {
    let cases: [&[u8]; 6] = [
        b"plain",
        &[0xff, 0xfe, b'a'],
        &[b'a', 0xc3, 0x28, 0],
        "caf\u{e9}".as_bytes(),
        "\u{10FF41}".as_bytes(),
        &[0xf4, 0x8f, 0xbd, 0x81, 0x80],
    ];
    for bytes in cases {
        let framed = wire(bytes);
        let (rest, parsed) = parse_short_string(&framed[..]).expect("always parses");
        assert!(rest.is_empty());
        assert_eq!(&*parsed.wire_bytes(), bytes, "{bytes:?}");
        assert_eq!(
            parsed.is_verbatim(),
            std::str::from_utf8(bytes).is_ok_and(|s| !s.contains('\u{10FF41}'))
        );
    }
    let (_, bad) = parse_short_string(&wire(&[0xff])[..]).unwrap();
    assert_eq!(
        bad.as_str(),
        char::from_u32(RAW_BYTE_BASE + 0xff).unwrap().to_string()
    );
}

#[test]
fn a_table_with_a_key_that_is_not_utf8_round_trips() {
    let mut table = FieldTable::default();
    let key = ShortString::from_wire(&[b'k', 0xff]);
    table.insert(key.clone(), AMQPValue::LongString(vec![0x80].into()));
    let mut buf = [0u8; 64];
    let (_, len) = cf_gen(gen_field_table(&table), &mut buf[..]).unwrap();
    let (_, parsed) = parse_field_table(&buf[..len as usize]).unwrap();
    assert_eq!(parsed, table);
    assert!(buf[..len as usize].windows(2).any(|w| w == [b'k', 0xff]));
}

#[test]
fn a_short_string_over_255_octets_is_refused_not_wrapped() {
    assert!(ShortString::try_new("x".repeat(256)).is_err());
    let raw: String =
        std::iter::repeat_n(char::from_u32(RAW_BYTE_BASE + 0x80).unwrap(), 255).collect();
    assert!(ShortString::try_new(raw).is_ok(), "255 raw octets fit");
}

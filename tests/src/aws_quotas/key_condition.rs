//! A Query's `KeyConditionExpression`, read as DynamoDB reads it: conditions joined by
//! `AND`, each `key = :v`, `key < :v`, `key <= :v`, `key > :v`, `key >= :v`,
//! `key BETWEEN :a AND :b` or `begins_with(key, :v)`; one equality on the partition key and
//! at most one condition on the sort key. Anything else (`OR`, `NOT`, `IN`, `<>`, other
//! functions, a non-key attribute, a second sort-key condition) DynamoDB refuses.

use std::collections::HashMap;

/// The key attributes of a table or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeySchema {
    /// The partition (hash) key.
    pub(super) partition: String,
    /// The sort (range) key, if any.
    pub(super) sort: Option<String>,
}

/// One token of an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An attribute name, a `#name` placeholder, or a keyword.
    Word(String),
    /// A `:value` placeholder.
    Value(String),
    /// `=`, `<`, `<=`, `>`, `>=` or `<>`.
    Comparison(String),
    Open,
    Close,
    Comma,
}

/// The placeholders (`#name`, `:value`) an expression uses, in order.
pub(super) fn placeholders(expression: &str) -> Result<Vec<String>, String> {
    Ok(tokens(expression)?
        .into_iter()
        .filter_map(|token| match token {
            Token::Value(value) => Some(value),
            Token::Word(word) if word.starts_with('#') => Some(word),
            _ => None,
        })
        .collect())
}

fn tokens(expression: &str) -> Result<Vec<Token>, String> {
    let bytes = expression.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'[' | b']' | b'-');
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        i += 1;
        let token = match bytes[start] {
            b if b.is_ascii_whitespace() => continue,
            b'(' => Token::Open,
            b')' => Token::Close,
            b',' => Token::Comma,
            b'=' => Token::Comparison("=".into()),
            b'<' | b'>' => {
                if matches!((bytes[start], bytes.get(i)), (_, Some(b'=')) | (b'<', Some(b'>'))) {
                    i += 1;
                }
                Token::Comparison(expression[start..i].to_owned())
            }
            b if b == b':' || b == b'#' || is_name(b) => {
                while i < bytes.len() && is_name(bytes[i]) {
                    i += 1;
                }
                let text = expression[start..i].to_owned();
                match b {
                    _ if i == start + 1 && !is_name(b) => {
                        return Err(format!("an empty placeholder in {expression:?}"));
                    }
                    b':' => Token::Value(text),
                    _ => Token::Word(text),
                }
            }
            _ => {
                let other = expression[start..].chars().next().unwrap_or_default();
                return Err(format!("unexpected {other:?} in {expression:?}"));
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// One condition on one key attribute.
#[derive(Debug, PartialEq, Eq)]
struct Condition {
    /// The attribute, placeholders resolved.
    attribute: String,
    equality: bool,
}

/// Reads `expression` into its conditions, or says why DynamoDB would not.
struct Parser<'a> {
    tokens: Vec<Token>,
    next: usize,
    names: Option<&'a HashMap<String, String>>,
    conditions: Vec<Condition>,
}

const UNSUPPORTED: &str = "a key condition is =, <, <=, >, >=, BETWEEN or begins_with, joined by AND";

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn take(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn expect(&mut self, expected: Token) -> Result<(), String> {
        match self.take() {
            Some(token) if token == expected => Ok(()),
            other => Err(format!("expected {expected:?}, found {other:?}: {UNSUPPORTED}")),
        }
    }

    /// `condition (AND condition)*`
    fn conjunction(&mut self) -> Result<(), String> {
        self.condition()?;
        while matches!(self.peek(), Some(Token::Word(word)) if word.eq_ignore_ascii_case("AND")) {
            self.keyword("AND")?;
            self.condition()?;
        }
        Ok(())
    }

    fn condition(&mut self) -> Result<(), String> {
        match self.take() {
            Some(Token::Open) => {
                self.conjunction()?;
                self.expect(Token::Close)
            }
            Some(Token::Word(function)) if function == "begins_with" => {
                self.expect(Token::Open)?;
                let attribute = self.attribute()?;
                self.expect(Token::Comma)?;
                self.value()?;
                self.expect(Token::Close)?;
                self.conditions.push(Condition {
                    attribute,
                    equality: false,
                });
                Ok(())
            }
            Some(Token::Word(word)) => {
                let attribute = self.resolve(word)?;
                let equality = match self.take() {
                    Some(Token::Comparison(op)) if op == "<>" => {
                        return Err(format!("<> on {attribute}: {UNSUPPORTED}"));
                    }
                    Some(Token::Comparison(op)) => {
                        self.value()?;
                        op == "="
                    }
                    Some(Token::Word(between)) if between.eq_ignore_ascii_case("BETWEEN") => {
                        self.value()?;
                        self.keyword("AND")?;
                        self.value()?;
                        false
                    }
                    other => return Err(format!("{other:?} after {attribute}: {UNSUPPORTED}")),
                };
                self.conditions.push(Condition { attribute, equality });
                Ok(())
            }
            other => Err(format!("{other:?}: {UNSUPPORTED}")),
        }
    }

    /// Takes `keyword`, in any letter case.
    fn keyword(&mut self, keyword: &str) -> Result<(), String> {
        match self.take() {
            Some(Token::Word(word)) if word.eq_ignore_ascii_case(keyword) => Ok(()),
            other => Err(format!("expected {keyword}, found {other:?}: {UNSUPPORTED}")),
        }
    }

    fn attribute(&mut self) -> Result<String, String> {
        match self.take() {
            Some(Token::Word(word)) => self.resolve(word),
            other => Err(format!("expected a key attribute, found {other:?}")),
        }
    }

    fn value(&mut self) -> Result<(), String> {
        match self.take() {
            Some(Token::Value(_)) => Ok(()),
            other => Err(format!("expected a :value placeholder, found {other:?}")),
        }
    }

    /// The attribute a word names: a `#name` placeholder's value, or the word itself.
    fn resolve(&self, word: String) -> Result<String, String> {
        let keyword = ["AND", "OR", "NOT", "IN", "BETWEEN"]
            .iter()
            .any(|k| word.eq_ignore_ascii_case(k));
        if keyword {
            return Err(format!("{word}: {UNSUPPORTED}"));
        }
        if !word.starts_with('#') {
            return Ok(word);
        }
        self.names
            .and_then(|names| names.get(&word))
            .cloned()
            .ok_or_else(|| format!("{word} is not in ExpressionAttributeNames"))
    }
}

/// Refuses `expression` (placeholders resolved with `names`) if DynamoDB would, for a
/// table or index whose keys are `schema` (unknown: only the shape is checked).
pub(super) fn check(
    expression: &str,
    names: Option<&HashMap<String, String>>,
    schema: Option<&KeySchema>,
) -> Result<(), String> {
    let mut parser = Parser {
        tokens: tokens(expression)?,
        next: 0,
        names,
        conditions: Vec::new(),
    };
    parser.conjunction()?;
    if let Some(extra) = parser.peek() {
        return Err(format!("{extra:?} after the conditions: {UNSUPPORTED}"));
    }
    let conditions = parser.conditions;
    let partition = match schema {
        Some(schema) => schema.partition.clone(),
        // Unknown keys: the equality is taken to be on the partition key.
        None => match conditions.iter().find(|c| c.equality) {
            Some(c) => c.attribute.clone(),
            None => return Err("no equality on the partition key".into()),
        },
    };
    let (on_partition, others): (Vec<&Condition>, Vec<&Condition>) =
        conditions.iter().partition(|c| c.attribute == partition);
    match on_partition.as_slice() {
        [only] if only.equality => {}
        [] => return Err(format!("no condition on the partition key {partition}")),
        [_] => return Err(format!("the partition key {partition} takes only =")),
        _ => return Err(format!("more than one condition on the partition key {partition}")),
    }
    match (others.as_slice(), schema) {
        ([], _) => Ok(()),
        ([other], Some(KeySchema { sort: Some(sort), .. })) if &other.attribute == sort => Ok(()),
        ([_], None) => Ok(()),
        ([other], _) => Err(format!("{} is not the sort key", other.attribute)),
        _ => Err("more than one condition on the sort key".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> KeySchema {
        KeySchema {
            partition: "pk".into(),
            sort: Some("sk".into()),
        }
    }

    fn verdict(expression: &str) -> Result<(), String> {
        let names = HashMap::from([("#p".to_owned(), "pk".to_owned()), ("#s".to_owned(), "sk".to_owned())]);
        check(expression, Some(&names), Some(&schema()))
    }

    #[test]
    fn the_key_conditions_dynamodb_accepts() {
        for ok in [
            "pk = :pk",
            "pk = :pk AND begins_with(sk, :prefix)",
            "pk = :pk AND sk <= :upper",
            "pk=:pk and sk>:s",
            "#p = :pk AND #s BETWEEN :a AND :b",
            "sk between :a and :b AND pk = :pk",
            "(pk = :pk) AND (sk >= :s)",
        ] {
            assert_eq!(verdict(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn the_key_conditions_dynamodb_refuses() {
        for refused in [
            "sk = :s",
            "begins_with(pk, :p)",
            "pk > :p",
            "pk = :p OR sk = :s",
            "pk = :p AND sk > :a AND sk < :b",
            "pk = :p AND data = :d",
            "pk = :p AND sk <> :s",
            "pk = :p AND sk IN (:a, :b)",
            "pk = :p AND NOT sk = :s",
            "pk = :p AND attribute_exists(sk)",
            "pk = :p AND #unknown = :s",
            "pk = :p AND pk = :q",
            "pk = :p sk = :s",
            "",
        ] {
            assert!(verdict(refused).is_err(), "{refused} was accepted");
        }
    }

    #[test]
    fn without_the_key_schema_the_shape_is_still_checked() {
        assert_eq!(check("gsi1pk = :p AND gsi1sk < :s", None, None), Ok(()));
        assert!(check("gsi1sk < :s", None, None).is_err());
        assert!(check("a = :a AND b = :b AND c = :c", None, None).is_err());
    }

    #[test]
    fn placeholders_are_listed_in_order() {
        assert_eq!(
            placeholders("#p = :pk AND begins_with(sk, :prefix)"),
            Ok(vec!["#p".to_owned(), ":pk".to_owned(), ":prefix".to_owned()])
        );
    }
}

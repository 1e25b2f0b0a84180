//! Capacity units by AWS's published rules, computed from item sizes — not from what the emulator
//! reports (DynamoDB Local charges 2.0 write units for any `TransactWriteItems`, whatever it
//! writes).
//!
//! - Item size: the sum, over its attributes, of the attribute name's length and the value's
//!   size: a string its UTF-8 bytes, a binary its bytes, a number 1 byte per two significant
//!   digits plus 1, a set the sum of its elements, a map or list 3 bytes plus 1 per element plus
//!   its elements (with their names), a boolean or null 1 byte.
//! - Write: one unit per started KB of each item written, charged for the larger of the item
//!   before and after (an update or a replacing put), twice that inside a transaction.
//! - Read: a `Query` page (or `Scan` page) one unit per started 4 KB of all items it returns,
//!   a `GetItem` per started 4 KB of its item, at least one unit; half with eventual
//!   consistency, twice inside a transaction.
//!
//! [`Accountant`] applies them to the requests and responses the counting proxy saw: items read
//! come from the responses; items written from the requests (a put holds the whole item), and
//! for an update the item is read back after the write by its key, outside the counted client,
//! its size before being the one recorded after the previous write of that key.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use crate::proxy::Exchange;

/// Bytes per write unit.
pub const WRITE_UNIT: usize = 1024;
/// Bytes per read unit (strongly consistent).
pub const READ_UNIT: usize = 4096;

/// Write units for one item of `bytes` outside a transaction.
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(WRITE_UNIT).max(1) as f64
}

/// Read units for `bytes` read by one request (a `Query` page, a `GetItem`).
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(READ_UNIT).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// The size of a number: 1 byte per two significant digits, plus 1 (leading and trailing zeros
/// are not stored).
pub fn number_size(n: &str) -> usize {
    let digits: String = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

/// Bytes a base64 text decodes to.
fn base64_len(s: &str) -> usize {
    let s = s.trim_end_matches('=');
    s.len() * 3 / 4
}

/// The size of a value in DynamoDB's JSON form (`{"S": "…"}`, `{"N": "1"}`, `{"B": "base64"}` …).
pub fn json_value_size(v: &Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let strings = |f: &dyn Fn(&str) -> usize| {
        inner
            .as_array()
            .map_or(0, |a| a.iter().filter_map(Value::as_str).map(f).sum())
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner.as_str().map_or(0, number_size),
        "B" => inner.as_str().map_or(0, base64_len),
        "SS" => strings(&str::len),
        "NS" => strings(&number_size),
        "BS" => strings(&base64_len),
        "BOOL" | "NULL" => 1,
        "L" => inner.as_array().map_or(3, |a| {
            3 + a.iter().map(|x| 1 + json_value_size(x)).sum::<usize>()
        }),
        "M" => inner.as_object().map_or(3, |m| {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + json_value_size(x))
                .sum::<usize>()
        }),
        _ => 0,
    }
}

/// The size of an item in DynamoDB's JSON form.
pub fn json_item_size(item: &serde_json::Map<String, Value>) -> usize {
    item.iter().map(|(k, v)| k.len() + json_value_size(v)).sum()
}

/// The size of a value as the SDK holds it.
pub fn sdk_value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(s) => s.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + sdk_value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + sdk_value_size(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// The size of an item as the SDK holds it.
pub fn sdk_item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + sdk_value_size(v)).sum()
}

/// Items written one way: how many, their sizes after the write, the largest.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Written {
    pub items: u64,
    pub bytes: u64,
    pub largest: u64,
}

impl std::ops::Add for Written {
    type Output = Written;
    fn add(self, o: Written) -> Written {
        Written {
            items: self.items + o.items,
            bytes: self.bytes + o.bytes,
            largest: self.largest.max(o.largest),
        }
    }
}

/// Capacity units and items of some requests, by AWS's rules.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Units {
    /// Write units.
    pub write: f64,
    /// Read units.
    pub read: f64,
    /// Items put (the whole item in the request).
    pub puts: Written,
    /// Items updated or deleted (sizes read back after the write).
    pub updates: Written,
    /// Items read (returned) and their sizes.
    pub items_read: u64,
    pub bytes_read: u64,
    /// Requests the service refused (not charged here).
    pub refused: u64,
}

impl std::ops::Add for Units {
    type Output = Units;
    fn add(self, o: Units) -> Units {
        Units {
            write: self.write + o.write,
            read: self.read + o.read,
            puts: self.puts + o.puts,
            updates: self.updates + o.updates,
            items_read: self.items_read + o.items_read,
            bytes_read: self.bytes_read + o.bytes_read,
            refused: self.refused + o.refused,
        }
    }
}

/// Applies AWS's rules to what the proxy saw; reads updated items back through its own client
/// (straight to the emulator, not counted).
#[derive(Debug)]
pub struct Accountant {
    client: aws_sdk_dynamodb::Client,
    /// Table → its key attribute names.
    keys: HashMap<String, Vec<String>>,
    /// (table, key) → the item's size after its last write seen.
    images: HashMap<(String, String), usize>,
}

impl Units {
    /// Items written, puts and updates.
    pub fn written(&self) -> Written {
        self.puts + self.updates
    }
}

impl Accountant {
    pub fn new(client: aws_sdk_dynamodb::Client) -> Accountant {
        Accountant {
            client,
            keys: HashMap::new(),
            images: HashMap::new(),
        }
    }

    async fn key_names(&mut self, table: &str) -> Result<Vec<String>> {
        if let Some(k) = self.keys.get(table) {
            return Ok(k.clone());
        }
        let out = self
            .client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .with_context(|| format!("describe {table}"))?;
        let names: Vec<String> = out
            .table()
            .map(|t| {
                t.key_schema()
                    .iter()
                    .map(|k| k.attribute_name().to_string())
                    .collect()
            })
            .unwrap_or_default();
        self.keys.insert(table.to_string(), names.clone());
        Ok(names)
    }

    /// The key of `item` (or a `Key` map) as a canonical string.
    async fn key_of(
        &mut self,
        table: &str,
        item: &serde_json::Map<String, Value>,
    ) -> Result<(String, serde_json::Map<String, Value>)> {
        let names = self.key_names(table).await?;
        let mut key = serde_json::Map::new();
        for n in &names {
            let v = item
                .get(n)
                .ok_or_else(|| anyhow!("{table}: an item without its key attribute {n}"))?;
            key.insert(n.clone(), v.clone());
        }
        Ok((Value::Object(key.clone()).to_string(), key))
    }

    /// Reads an item back (strongly consistent); its size, 0 when there is none.
    async fn size_now(&self, table: &str, key: &serde_json::Map<String, Value>) -> Result<usize> {
        let mut k = HashMap::new();
        for (name, v) in key {
            let av = match v.as_object().and_then(|o| o.iter().next()) {
                Some((t, Value::String(s))) if t == "S" => AttributeValue::S(s.clone()),
                Some((t, Value::String(s))) if t == "N" => AttributeValue::N(s.clone()),
                _ => return Err(anyhow!("{table}: key attribute {name} is not S or N")),
            };
            k.insert(name.clone(), av);
        }
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(k))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("read an item of {table} back"))?;
        Ok(out.item().map_or(0, sdk_item_size))
    }

    /// Units of one written item: `after` bytes now, the larger of that and its size before.
    fn written(
        &mut self,
        key: (String, String),
        after: Option<usize>,
        factor: f64,
        put: bool,
    ) -> Units {
        let before = self.images.get(&key).copied();
        let charged = before.unwrap_or(0).max(after.unwrap_or(0));
        match after {
            Some(a) => {
                self.images.insert(key, a);
            }
            None => {
                self.images.remove(&key);
            }
        }
        let w = Written {
            items: 1,
            bytes: after.unwrap_or(0) as u64,
            largest: after.unwrap_or(0) as u64,
        };
        Units {
            write: factor * write_units(charged),
            puts: if put { w } else { Written::default() },
            updates: if put { Written::default() } else { w },
            ..Units::default()
        }
    }

    /// A put of `item` into `table` (the whole item is in the request).
    async fn put(
        &mut self,
        table: &str,
        item: &serde_json::Map<String, Value>,
        factor: f64,
    ) -> Result<Units> {
        let (key, _) = self.key_of(table, item).await?;
        let size = json_item_size(item);
        Ok(self.written((table.to_string(), key), Some(size), factor, true))
    }

    /// An update or delete of the item at `key`: read back after the write.
    async fn changed(
        &mut self,
        table: &str,
        key: &serde_json::Map<String, Value>,
        factor: f64,
    ) -> Result<Units> {
        let (k, key) = self.key_of(table, key).await?;
        let now = self.size_now(table, &key).await?;
        let after = (now > 0).then_some(now);
        // An item not seen written before: charged for its size now.
        self.images
            .entry((table.to_string(), k.clone()))
            .or_insert(now);
        Ok(self.written((table.to_string(), k), after, factor, false))
    }

    /// Units of a series of requests, in the order they were sent.
    pub async fn charge(&mut self, exchanges: &[Exchange]) -> Result<Units> {
        let mut total = Units::default();
        for x in exchanges {
            total = total + self.charge_one(x).await?;
        }
        Ok(total)
    }

    async fn charge_one(&mut self, x: &Exchange) -> Result<Units> {
        if x.status != 200 {
            return Ok(Units {
                refused: 1,
                ..Units::default()
            });
        }
        let parse = |b: &[u8]| -> Result<Value> {
            if b.is_empty() {
                Ok(Value::Null)
            } else {
                serde_json::from_slice(b).context("a body that is not JSON")
            }
        };
        let req = parse(&x.request)?;
        let obj = |v: &Value| v.as_object().cloned().unwrap_or_default();
        let table_of = |v: &Value| v["TableName"].as_str().unwrap_or_default().to_string();
        let consistent = req["ConsistentRead"].as_bool().unwrap_or(false);
        let mut u = Units::default();
        match x.target.as_str() {
            "TransactWriteItems" => {
                for entry in req["TransactItems"].as_array().into_iter().flatten() {
                    if let Some(put) = entry.get("Put") {
                        u = u + self.put(&table_of(put), &obj(&put["Item"]), 2.0).await?;
                    } else if let Some(op) = entry.get("Update").or_else(|| entry.get("Delete")) {
                        u = u + self.changed(&table_of(op), &obj(&op["Key"]), 2.0).await?;
                    } else if let Some(check) = entry.get("ConditionCheck") {
                        let (_, key) = self.key_of(&table_of(check), &obj(&check["Key"])).await?;
                        let size = self.size_now(&table_of(check), &key).await?;
                        u.read += 2.0 * read_units(size, true);
                    }
                }
            }
            "PutItem" => u = self.put(&table_of(&req), &obj(&req["Item"]), 1.0).await?,
            "UpdateItem" | "DeleteItem" => {
                u = self
                    .changed(&table_of(&req), &obj(&req["Key"]), 1.0)
                    .await?;
            }
            "BatchWriteItem" => {
                if let Some(tables) = req["RequestItems"].as_object() {
                    for (table, writes) in tables {
                        for w in writes.as_array().into_iter().flatten() {
                            if let Some(p) = w.get("PutRequest") {
                                u = u + self.put(table, &obj(&p["Item"]), 1.0).await?;
                            } else if let Some(d) = w.get("DeleteRequest") {
                                u = u + self.changed(table, &obj(&d["Key"]), 1.0).await?;
                            }
                        }
                    }
                }
            }
            "Query" | "Scan" | "GetItem" | "BatchGetItem" => {
                let resp = parse(&x.response)?;
                let mut sizes: Vec<usize> = Vec::new();
                match x.target.as_str() {
                    "GetItem" => sizes.extend(resp["Item"].as_object().map(json_item_size)),
                    "BatchGetItem" => {
                        for items in resp["Responses"].as_object().into_iter().flatten() {
                            sizes.extend(
                                items
                                    .1
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(Value::as_object)
                                    .map(json_item_size),
                            );
                        }
                    }
                    _ => sizes.extend(
                        resp["Items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_object)
                            .map(json_item_size),
                    ),
                }
                u.items_read = sizes.len() as u64;
                u.bytes_read = sizes.iter().sum::<usize>() as u64;
                u.read = if x.target == "BatchGetItem" {
                    // Each item is rounded up on its own (BatchGetItem asks per table).
                    sizes.iter().map(|s| read_units(*s, true)).sum()
                } else {
                    read_units(u.bytes_read as usize, consistent)
                };
            }
            _ => {}
        }
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("7"), 2);
        assert_eq!(number_size("12"), 2);
        assert_eq!(number_size("123"), 3);
        assert_eq!(number_size("1000"), 2);
        assert_eq!(number_size("-0.0125"), 3);
        assert_eq!(number_size("9223372036854775807"), 11);
    }

    #[test]
    fn json_and_sdk_sizes_agree() {
        let json: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"pk":{"S":"bench|account|s-1"},"sk":{"N":"9223372036854775807"},
                "e":{"B":"AAECAwQFBgcICQ=="},"i0":{"BS":["AAEC","AwQF"]},
                "m":{"M":{"a":{"S":"xy"},"b":{"L":[{"N":"1"},{"BOOL":true}]}}}}"#,
        )
        .expect("test JSON");
        let blob = |b: &[u8]| aws_sdk_dynamodb::primitives::Blob::new(b.to_vec());
        let sdk: HashMap<String, AttributeValue> = HashMap::from([
            ("pk".into(), AttributeValue::S("bench|account|s-1".into())),
            ("sk".into(), AttributeValue::N("9223372036854775807".into())),
            (
                "e".into(),
                AttributeValue::B(blob(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9])),
            ),
            (
                "i0".into(),
                AttributeValue::Bs(vec![blob(&[0, 1, 2]), blob(&[3, 4, 5])]),
            ),
            (
                "m".into(),
                AttributeValue::M(HashMap::from([
                    ("a".into(), AttributeValue::S("xy".into())),
                    (
                        "b".into(),
                        AttributeValue::L(vec![
                            AttributeValue::N("1".into()),
                            AttributeValue::Bool(true),
                        ]),
                    ),
                ])),
            ),
        ]);
        assert_eq!(json_item_size(&json), sdk_item_size(&sdk));
        // pk 2+17, sk 2+11, e 1+10, i0 2+6, m 1+(3 + 1+1+2 + 1+1+(3+1+2+1+1)).
        assert_eq!(sdk_item_size(&sdk), 19 + 13 + 11 + 8 + 1 + 3 + 4 + 2 + 8);
    }

    #[test]
    fn units() {
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(read_units(4096, true), 1.0);
        assert_eq!(read_units(4097, true), 2.0);
        assert_eq!(read_units(4097, false), 1.0);
    }
}

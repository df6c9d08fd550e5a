//! A map from names to items, kept sorted by name: what the configuration's tables (providers, models, regions,
//! secrets) need, without a search tree whose code is instantiated per item type in the wasm.

/// Names and items in two vectors, so that the search over names is shared by every item type.
#[derive(Debug, Clone, PartialEq)]
pub struct Named<T> {
    names: Vec<String>,
    items: Vec<T>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named {
            names: Vec::new(),
            items: Vec::new(),
        }
    }
}

/// Where `name` is, or where it would go.
fn locate(names: &[String], name: &str) -> Result<usize, usize> {
    names.binary_search_by(|n| n.as_str().cmp(name))
}

impl<T> Named<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the item called `name`.
    pub fn insert(&mut self, name: String, item: T) {
        match locate(&self.names, &name) {
            Ok(i) => self.items[i] = item,
            Err(i) => {
                self.names.insert(i, name);
                self.items.insert(i, item);
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&T> {
        locate(&self.names, name).ok().map(|i| &self.items[i])
    }

    pub fn contains_key(&self, name: &str) -> bool {
        locate(&self.names, name).is_ok()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// In name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &T)> {
        self.names.iter().zip(&self.items)
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> {
        self.names.iter()
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &T> {
        self.items.iter()
    }
}

impl<T> IntoIterator for Named<T> {
    type Item = (String, T);
    type IntoIter = std::iter::Zip<std::vec::IntoIter<String>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.names.into_iter().zip(self.items)
    }
}

impl<'a, T> IntoIterator for &'a Named<T> {
    type Item = (&'a String, &'a T);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, String>, std::slice::Iter<'a, T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.names.iter().zip(&self.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_by_name_and_last_insert_wins() {
        let mut n = Named::new();
        for (k, v) in [("b", 1), ("a", 2), ("c", 3), ("a", 4)] {
            n.insert(k.to_owned(), v);
        }
        assert_eq!(n.len(), 3);
        assert_eq!(n.get("a"), Some(&4));
        assert_eq!(n.get("zz"), None);
        let order: Vec<_> = n.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(order, [("a", 4), ("b", 1), ("c", 3)]);
        assert!(n.contains_key("c") && !n.contains_key(""));
    }
}

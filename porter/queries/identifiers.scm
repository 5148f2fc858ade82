; Every plain identifier: candidate uses of globals and references to functions.
(identifier) @id

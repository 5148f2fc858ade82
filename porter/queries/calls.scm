; Calls of a named function or function-like macro.
(call_expression function: (identifier) @call.name) @call

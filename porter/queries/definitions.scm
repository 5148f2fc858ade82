; Function definitions and declarations anywhere in the file (top level, inside #if blocks,
; and inside function bodies for function-local statics).
(function_definition) @function
(declaration) @declaration

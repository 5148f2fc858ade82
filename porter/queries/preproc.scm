; Macro definitions the parser read as such.
(preproc_def name: (identifier) @macro.name) @macro
(preproc_function_def name: (identifier) @macro.name parameters: (preproc_params) @macro.params) @macro

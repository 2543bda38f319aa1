// What the page's editor (web/static/web/js/editor.js) needs from CodeMirror 6, and nothing else.
// The colours are the page's own (CSS variables in terminal.css), so no theme package is bundled.
export { basicSetup } from "codemirror";
export { EditorView, keymap, placeholder } from "@codemirror/view";
export { Compartment, EditorState } from "@codemirror/state";
export { HighlightStyle, indentUnit, syntaxHighlighting } from "@codemirror/language";
export { indentWithTab } from "@codemirror/commands";
export { setDiagnostics } from "@codemirror/lint";
export { python } from "@codemirror/lang-python";
export { tags } from "@lezer/highlight";

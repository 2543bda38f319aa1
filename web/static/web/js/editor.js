// The code editor: CodeMirror 6 from the committed bundle (web/editor-bundle builds it), coloured
// with the page's CSS variables so it follows the terminal and the light theme.
import {
  Compartment,
  EditorState,
  EditorView,
  HighlightStyle,
  basicSetup,
  indentUnit,
  indentWithTab,
  keymap,
  placeholder,
  python,
  setDiagnostics,
  syntaxHighlighting,
  tags as t,
} from "../vendor/codemirror.js";

const chrome = {
  "&": { color: "var(--fg)", backgroundColor: "var(--bg)", border: "1px solid var(--fg2)", fontSize: "13px" },
  "&.cm-focused": { outline: "none", borderColor: "var(--fg)", boxShadow: "var(--glow-strong)" },
  ".cm-scroller": { fontFamily: "var(--font)", lineHeight: "1.5" },
  ".cm-content": { caretColor: "var(--fg)" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--fg)" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection":
    { backgroundColor: "var(--cm-selection)" },
  ".cm-gutters": { backgroundColor: "var(--bg3)", color: "var(--muted)", borderRight: "1px solid var(--fg2)" },
  ".cm-activeLine": { backgroundColor: "var(--cm-active-line)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--cm-active-line)", color: "var(--fg)" },
  ".cm-matchingBracket, &.cm-focused .cm-matchingBracket": { backgroundColor: "var(--cm-selection)", outline: "1px solid var(--fg2)" },
  ".cm-placeholder": { color: "var(--muted)" },
  ".cm-tooltip, .cm-panels": { backgroundColor: "var(--bg2)", color: "var(--fg)", border: "1px solid var(--border)" },
  ".cm-tooltip-autocomplete > ul > li[aria-selected]": { backgroundColor: "var(--fg)", color: "var(--bg)" },
  ".cm-panels input, .cm-panels button": { font: "inherit" },
  ".cm-lintRange-error": { textDecoration: "underline wavy var(--error)", backgroundImage: "none" },
  ".cm-diagnostic-error": { borderLeftColor: "var(--error)", color: "var(--error)" },
};
// CodeMirror picks some defaults (selection, panels) by a dark/light flag: one theme per flag,
// swapped when the page's theme changes.
const themes = { dark: EditorView.theme(chrome, { dark: true }), light: EditorView.theme(chrome, { dark: false }) };

const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.definitionKeyword, t.moduleKeyword, t.operatorKeyword], color: "var(--accent)", fontWeight: "600" },
  { tag: [t.string, t.special(t.string)], color: "var(--warning)" },
  { tag: [t.comment, t.lineComment], color: "var(--muted)", fontStyle: "italic" },
  { tag: [t.number, t.bool, t.null, t.atom], color: "var(--paused)" },
  { tag: [t.function(t.variableName), t.function(t.propertyName), t.definition(t.function(t.variableName))], color: "var(--success)" },
  { tag: [t.className, t.definition(t.className), t.typeName], color: "var(--accent)" },
  { tag: [t.self, t.special(t.variableName)], color: "var(--fg2)", fontStyle: "italic" },
  { tag: [t.meta, t.processingInstruction], color: "var(--fg2)" },
  { tag: t.invalid, color: "var(--error)" },
]);

const pageTheme = () => (document.documentElement.dataset.theme === "light" ? "light" : "dark");
const liveEditors = new Set();
new MutationObserver(() => {
  for (const editor of liveEditors) {
    if (!editor.view.dom.isConnected) liveEditors.delete(editor);
    else editor.view.dispatch({ effects: editor.theme.reconfigure(themes[pageTheme()]) });
  }
}).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });

/**
 * An editor for `language` "python" or "text" (requirements). `onChange(text)` runs on every edit,
 * `onSave()` on Ctrl/Cmd-S, `onRun()` on Ctrl/Cmd-Enter. Returns { dom, value (get/set), focus(), markError(line, message,
 * { reveal }), clearErrors() }; markError underlines a 1-based line, e.g. where the server found a syntax error, and with
 * `reveal` (the default) puts the cursor there.
 */
export function createEditor({ doc = "", language = "python", label, hint = "", onChange, onSave, onRun } = {}) {
  const theme = new Compartment();
  const call = (fn) => () => {
    if (fn) fn();
    return true;
  };
  const ownKeys = keymap.of([
    { key: "Mod-s", preventDefault: true, run: call(onSave) },
    { key: "Mod-Enter", preventDefault: true, run: call(onRun) },
    indentWithTab,
  ]);
  const view = new EditorView({
    state: EditorState.create({
      doc,
      extensions: [
        ownKeys,
        basicSetup,
        language === "python" ? python() : [],
        indentUnit.of("    "),
        syntaxHighlighting(highlight),
        theme.of(themes[pageTheme()]),
        hint ? placeholder(hint) : [],
        EditorView.contentAttributes.of({ "aria-label": label || "code", spellcheck: "false" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged && onChange) onChange(update.state.doc.toString());
        }),
      ],
    }),
  });
  const editor = { view, theme };
  liveEditors.add(editor);

  return {
    dom: view.dom,
    get value() {
      return view.state.doc.toString();
    },
    set value(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    focus: () => view.focus(),
    markError(line, message, { reveal = true } = {}) {
      const doc = view.state.doc;
      const number = Math.min(Math.max(1, Number(line) || 1), doc.lines);
      const target = doc.line(number);
      view.dispatch(setDiagnostics(view.state, [{ from: target.from, to: target.to, severity: "error", message }]));
      if (reveal) view.dispatch({ selection: { anchor: target.from }, scrollIntoView: true });
    },
    clearErrors: () => view.dispatch(setDiagnostics(view.state, [])),
  };
}

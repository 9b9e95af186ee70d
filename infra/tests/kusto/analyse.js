// Parses and analyses KQL queries with Microsoft's Kusto.Language (@kusto/language-service-next,
// the C# library compiled to JavaScript with Bridge.NET), against the tables the caller declares.
//
//   node analyse.js <node_modules folder>  < request.json  > answer.json
//
// request: {"databases": {"<name>": {"<table>": [["column", "type"], ...]}},
//           "queries": [{"name": "...", "database": "<name>", "text": "..."}]}
// answer:  [{"name": "...", "diagnostics": [{"code", "severity", "message", "start", "length"}],
//            "regexes": [{"function", "pattern", "start"}], "unchecked": ["..."]}]
//
// Kusto.Language does not check a regular expression's syntax; the caller compiles each pattern
// found here with RE2, the engine Kusto's regexes are. A regex argument that is not a constant, or
// a regex use not listed below, is reported as unchecked rather than let through.

"use strict";

const path = require("path");
const fs = require("fs");

const modules = process.argv[2];
require(path.join(modules, "@kusto/language-service-next/bridge.min.js"));
require(path.join(modules, "@kusto/language-service-next/Kusto.Language.Bridge.min.js"));

const Symbols = Kusto.Language.Symbols;
const Syntax = Kusto.Language.Syntax;

// The functions whose argument at this index is a regular expression (Kusto's documentation
// of each: extract, extract_all, replace_regex, trim, trim_start, trim_end).
const REGEX_ARGUMENT = { extract: 0, extract_all: 0, replace_regex: 1, trim: 0, trim_start: 0, trim_end: 0 };

function list(items) {
  const result = [];
  for (let i = 0; i < items.Count; i++) result.push(items.getItem(i));
  return result;
}

function globalsFor(tables) {
  // Column by column: the constructor that takes a schema text stops at a column named like a keyword (`kind`).
  const symbols = Object.entries(tables).map(([name, columns]) => new Symbols.TableSymbol.$ctor4(name, columns.map(
    function ([column, type]) {
      const scalar = Symbols.ScalarTypes.GetSymbol(type);
      if (!scalar) throw new Error(`table ${name}: column ${column} has an unknown type ${type}`);
      return new Symbols.ColumnSymbol.ctor(column, scalar);
    })));
  return Kusto.Language.GlobalState.Default.WithDatabase(new Symbols.DatabaseSymbol.ctor("logs", symbols));
}

function regexUses(code) {
  const regexes = [];
  const unchecked = [];
  function constant(expression, what) {
    const value = expression.ConstantValue;
    if (typeof value === "string") {
      regexes.push({ function: what, pattern: value, start: expression.TextStart });
    } else {
      unchecked.push(`${what}: a regular expression that is not a constant string, at ${expression.TextStart}`);
    }
  }
  code.Syntax.WalkElements(function (element) {
    if (element instanceof Syntax.FunctionCallExpression) {
      const name = element.Name.SimpleName;
      const index = REGEX_ARGUMENT[name];
      const args = list(element.ArgumentList.Expressions).map((e) => e.Element);
      if (index !== undefined && args.length > index) constant(args[index], name);
      else if (name === "countof" && args.length > 2) unchecked.push(`countof with a kind, at ${element.TextStart}`);
    } else if (element.Kind === Syntax.SyntaxKind.MatchesRegexExpression) {
      constant(element.Right, "matches regex");
    } else if (element instanceof Syntax.ParseOperator || element instanceof Syntax.ParseWhereOperator) {
      if (/kind\s*=\s*regex/i.test(element.ToString())) unchecked.push(`parse kind=regex, at ${element.TextStart}`);
    }
  });
  return { regexes, unchecked };
}

const request = JSON.parse(fs.readFileSync(0, "utf8"));
const globals = {};
for (const [name, tables] of Object.entries(request.databases)) globals[name] = globalsFor(tables);

const answer = request.queries.map(function (query) {
  const scope = globals[query.database];
  if (!scope) throw new Error(`query ${query.name}: no database ${query.database}`);
  const code = Kusto.Language.KustoCode.ParseAndAnalyze(query.text, scope);
  const diagnostics = list(code.GetDiagnostics()).map((d) => ({
    code: d.Code, severity: d.Severity, message: d.Message, start: d.Start, length: d.Length,
  }));
  return { name: query.name, diagnostics, ...regexUses(code) };
});
process.stdout.write(JSON.stringify(answer));

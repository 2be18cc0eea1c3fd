// The cnnspec extension: starts `cnnspec lsp` over stdio for .cnn files.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const settings = vscode.workspace.getConfiguration("cnnspec");
  const [command, ...args] = settings.get("command", ["cnnspec", "lsp"]);
  const server = { command, args };
  client = new LanguageClient(
    "cnnspec",
    "cnnspec",
    { run: server, debug: server },
    {
      documentSelector: [{ language: "cnn" }],
      initializationOptions: { inlayHints: settings.get("inlayHints", true) },
    },
  );
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("cnnspec")) {
        vscode.commands.executeCommand("workbench.action.restartExtensionHost");
      }
    }),
  );
  client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };

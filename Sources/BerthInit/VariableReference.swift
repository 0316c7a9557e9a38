import BerthPlugins

/// docs/variables.md, generated from the declarations it documents: berth's
/// own variables, then one table per plugin in registry order. A test
/// keeps the file equal to this text, so the reference cannot drift from
/// what the code reads.
enum VariableReference {
    static func markdown() -> String {
        var text = """
        # Variables

        Generated from the plugin registry (`plugins/Registry.swift`) and berth's own declarations by
        `BERTH_WRITE_DOCS=1 swift test --filter VariableReferenceTests`; do not edit by hand.

        Every secret can also be given as `NAME_FILE`, the path of a file holding it (Docker and Kubernetes
        secrets); setting both is an error. Durations take units (`500ms`, `300s`, `5m`, `1h30m`, `7d`) or a
        bare number of seconds. Booleans: `1/0`, `true/false`, `yes/no`, `on/off`.

        ## berth

        The init's own options (each also a command-line option, which wins) are in `berth --help`:
        `BERTH_VERBOSITY`, `BERTH_KILL_GROUP`, `BERTH_REWRITE`, `BERTH_REMAP_EXIT`, `BERTH_PDEATH_SIGNAL`,
        `BERTH_KILL_GRACE`, `BERTH_WARN_ON_REAP`.


        """
        text += table(Configuration.variables)
        for plugin in registry {
            text += "\n## \(plugin.name)\n\n\(plugin.summary)\n\n" + table(plugin.variables)
        }
        return text
    }

    private static func table(_ variables: [PluginVariable]) -> String {
        var rows = "| variable | default | kind | what it does |\n|---|---|---|---|\n"
        for variable in variables {
            let kind = switch variable.role {
            case .request: "asks for it"
            case .secret: "secret, asks for it"
            case .credential: "secret"
            case .serviceSwitch: "service switch"
            case .option: "option"
            }
            let defaultValue = variable.defaultValue.isEmpty ? "" : variable.defaultValue.hasPrefix("`") || variable.defaultValue.contains(" ")
                ? variable.defaultValue : "`\(variable.defaultValue)`"
            rows += "| `\(variable.name)` | \(defaultValue) | \(kind) | \(variable.meaning.replacingPipes) |\n"
        }
        return rows
    }
}

extension String {
    fileprivate var replacingPipes: String {
        String(flatMap { $0 == "|" ? Array("\\|") : [$0] })
    }
}

/// Why items cannot be put in dependency order.
public enum DependencyOrderError: Error, Equatable {
    case duplicateName(String)
    case unknownDependency(item: String, dependency: String)
    case cycle([String])
}

/// Dependencies first, otherwise the given order kept: the one ordering of
/// provisioning steps and services alike. Names must be unique and every
/// dependency must name an item.
public func dependencyOrder<Item>(_ items: [Item], name: (Item) -> String,
                                  dependencies: (Item) -> [String]) throws(DependencyOrderError) -> [Item] {
    var names = Set<String>()
    for item in items {
        guard names.insert(name(item)).inserted else { throw .duplicateName(name(item)) }
    }
    for item in items {
        for dependency in dependencies(item) where !names.contains(dependency) {
            throw .unknownDependency(item: name(item), dependency: dependency)
        }
    }
    var ordered: [Item] = []
    var placed = Set<String>()
    var remaining = items
    while !remaining.isEmpty {
        guard let next = remaining.firstIndex(where: { dependencies($0).allSatisfy(placed.contains) }) else {
            throw .cycle(remaining.map(name))
        }
        placed.insert(name(remaining[next]))
        ordered.append(remaining.remove(at: next))
    }
    return ordered
}

import Foundation
import Testing
import TestSupport

/// There is no Docker daemon and no cluster here, so `docker compose up` and
/// `kubectl apply` cannot run; `scripts/check_deploy.py` checks instead what
/// can be checked without them (Kubernetes schemas, compose references and
/// mounts, Debian package names, `reachd config check` on every mounted
/// configuration, `systemd-analyze verify`). See the script's docstring.
@Suite("the deployment files in deploy/: Dockerfile, compose, Kubernetes, systemd")
struct DeployFilesTests {
    @Test("scripts/check_deploy.py passes every check")
    func deployFilesCheck() async throws {
        let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/check_deploy.py").path
        let reachd = TestEnvironment.reachdBinary.path
        let (code, output) = try await blocking { () throws -> (Int32, String) in
            let process = try spawn("python3", [script], environment: ["REACHD": reachd])
            defer { unlink(process.outputPath) }
            let code = process.waitBlocking()
            return (code, process.output)
        }
        #expect(code == 0, "scripts/check_deploy.py exited \(code):\n\(output)")
        #expect(output.contains("check_deploy: all checks passed"), "scripts/check_deploy.py:\n\(output)")
    }
}

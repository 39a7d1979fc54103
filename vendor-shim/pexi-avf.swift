// pexi-avf: runs one pexi sandbox VM with Apple's Virtualization.framework (macOS 13+).
//
// pexi's supervisor starts it as a child and owns its whole contract through the command
// line (src/vm/avf.h); tests/fixtures/avf-standin honours the same contract on Linux:
//
//   pexi-avf --disk D --seed S --efi-vars F --machine-id F --cpus N --memory BYTES
//            [--shared-dir DIR] --console LOG --vsock-port P --pep-socket SOCK
//            --stop-timeout SECONDS
//
// - EFI boot (VZEFIBootLoader) with a persistent variable store F and a generic machine
//   identifier kept in its own file, both created on the first run, so the guest sees the
//   same machine from one `pexi up` to the next.
// - VZGenericPlatformConfiguration; the disk D read-write and the seed S read-only, both
//   virtio block; DIR shared with virtio-fs under the tag "workspace"; entropy; no network
//   device at all (networkDevices stays empty: the guest's only way out is the channel).
// - A virtio console appended to LOG.
// - A VZVirtioSocketListener on vsock port P: each guest connection is bridged, byte for
//   byte, to a new connection to the PEP's unix socket SOCK.
// - SIGTERM asks the guest to stop (requestStop, the power button) and stops the VM after
//   SECONDS if the guest has not; the process exits when the VM stops (0), when it fails
//   (1), and when its parent dies (a kqueue NOTE_EXIT watch on the parent's pid), so no VM
//   outlives pexi's supervisor.
import Darwin
import Foundation
import Virtualization

func fail(_ message: String) -> Never {
    FileHandle.standardError.write("pexi-avf: \(message)\n".data(using: .utf8)!)
    exit(1)
}

func note(_ message: String) {
    FileHandle.standardError.write("pexi-avf: \(message)\n".data(using: .utf8)!)
}

struct Options {
    var disk = "", seed = "", efiVars = "", machineID = "", console = "", pepSocket = ""
    var sharedDir: String?
    var cpus = 2, memory: UInt64 = 1 << 30, vsockPort: UInt32 = 5000, stopTimeout = 10.0

    static func parse(_ args: [String]) -> Options {
        var o = Options()
        var seen = Set<String>()
        var i = 1
        while i < args.count {
            let flag = args[i]
            guard i + 1 < args.count else { fail("option '\(flag)' needs a value") }
            let value = args[i + 1]
            seen.insert(flag)
            switch flag {
            case "--disk": o.disk = value
            case "--seed": o.seed = value
            case "--efi-vars": o.efiVars = value
            case "--machine-id": o.machineID = value
            case "--console": o.console = value
            case "--pep-socket": o.pepSocket = value
            case "--shared-dir": o.sharedDir = value
            case "--cpus":
                guard let n = Int(value), n > 0 else { fail("--cpus wants a positive number") }
                o.cpus = n
            case "--memory":
                guard let n = UInt64(value), n > 0 else { fail("--memory wants bytes") }
                o.memory = n
            case "--vsock-port":
                guard let n = UInt32(value) else { fail("--vsock-port wants a port number") }
                o.vsockPort = n
            case "--stop-timeout":
                guard let n = Double(value), n >= 0 else { fail("--stop-timeout wants seconds") }
                o.stopTimeout = n
            default:
                fail("unknown option '\(flag)'")
            }
            i += 2
        }
        for required in ["--disk", "--seed", "--efi-vars", "--machine-id", "--cpus", "--memory",
                         "--console", "--vsock-port", "--pep-socket", "--stop-timeout"]
        where !seen.contains(required) {
            fail("option '\(required)' is required")
        }
        return o
    }
}

let opts = Options.parse(CommandLine.arguments)
let parentPID = getppid()
if parentPID == 1 {
    fail("started without a parent to watch (pexi's supervisor must start the runner)")
}

// The machine identifier: the same one on every run, or the guest's firmware sees a new
// machine each time.
func machineIdentifier(at path: String) -> VZGenericMachineIdentifier {
    let url = URL(fileURLWithPath: path)
    if let data = try? Data(contentsOf: url), !data.isEmpty {
        guard let id = VZGenericMachineIdentifier(dataRepresentation: data) else {
            fail("'\(path)' does not hold a machine identifier")
        }
        return id
    }
    let id = VZGenericMachineIdentifier()
    do {
        try id.dataRepresentation.write(to: url, options: .atomic)
    } catch {
        fail("cannot write '\(path)': \(error.localizedDescription)")
    }
    return id
}

func variableStore(at path: String) -> VZEFIVariableStore {
    let url = URL(fileURLWithPath: path)
    if FileManager.default.fileExists(atPath: path) {
        return VZEFIVariableStore(url: url)
    }
    do {
        return try VZEFIVariableStore(creatingVariableStoreAt: url, options: [])
    } catch {
        fail("cannot create the EFI variable store '\(path)': \(error.localizedDescription)")
    }
}

func blockDevice(_ path: String, readOnly: Bool) -> VZVirtioBlockDeviceConfiguration {
    do {
        let attachment = try VZDiskImageStorageDeviceAttachment(
            url: URL(fileURLWithPath: path), readOnly: readOnly)
        return VZVirtioBlockDeviceConfiguration(attachment: attachment)
    } catch {
        fail("cannot attach '\(path)': \(error.localizedDescription)")
    }
}

// The console log is appended to, never truncated: pexi creates it empty for each run.
func consoleHandle(_ path: String) -> FileHandle {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    if fd < 0 {
        fail("cannot open the console log '\(path)': \(String(cString: strerror(errno)))")
    }
    return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
}

let config = VZVirtualMachineConfiguration()
config.cpuCount = max(VZVirtualMachineConfiguration.minimumAllowedCPUCount,
                      min(opts.cpus, VZVirtualMachineConfiguration.maximumAllowedCPUCount))
config.memorySize = max(VZVirtualMachineConfiguration.minimumAllowedMemorySize,
                        min(opts.memory, VZVirtualMachineConfiguration.maximumAllowedMemorySize))
let platform = VZGenericPlatformConfiguration()
platform.machineIdentifier = machineIdentifier(at: opts.machineID)
config.platform = platform
let bootLoader = VZEFIBootLoader()
bootLoader.variableStore = variableStore(at: opts.efiVars)
config.bootLoader = bootLoader
config.storageDevices = [blockDevice(opts.disk, readOnly: false),
                         blockDevice(opts.seed, readOnly: true)]
config.networkDevices = []
if let dir = opts.sharedDir {
    let fs = VZVirtioFileSystemDeviceConfiguration(tag: "workspace")
    fs.share = VZSingleDirectoryShare(
        directory: VZSharedDirectory(url: URL(fileURLWithPath: dir), readOnly: false))
    config.directorySharingDevices = [fs]
}
let console = VZVirtioConsoleDeviceSerialPortConfiguration()
console.attachment = VZFileHandleSerialPortAttachment(
    fileHandleForReading: FileHandle(forReadingAtPath: "/dev/null"),
    fileHandleForWriting: consoleHandle(opts.console))
config.serialPorts = [console]
config.entropyDevices = [VZVirtioEntropyDeviceConfiguration()]
config.memoryBalloonDevices = [VZVirtioTraditionalMemoryBalloonDeviceConfiguration()]
config.socketDevices = [VZVirtioSocketDeviceConfiguration()]
do {
    try config.validate()
} catch {
    fail("invalid VM configuration: \(error.localizedDescription)")
}

// Copies bytes from one descriptor to another until end of file or an error, then shuts
// down the write side so the peer sees the end too.
func pump(from src: Int32, to dst: Int32) {
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(src, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        var off = 0
        while off < n {
            let w = buf.withUnsafeBytes { write(dst, $0.baseAddress! + off, n - off) }
            if w < 0 && errno == EINTR { continue }
            if w <= 0 { shutdown(src, SHUT_RD); shutdown(dst, SHUT_WR); return }
            off += w
        }
    }
    shutdown(dst, SHUT_WR)
}

func connectUnix(_ path: String) -> Int32? {
    let fd = socket(AF_UNIX, SOCK_STREAM, 0)
    if fd < 0 { return nil }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
        close(fd)
        return nil
    }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let len = socklen_t(MemoryLayout<sockaddr_un>.size)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, len) }
    }
    if rc != 0 {
        close(fd)
        return nil
    }
    return fd
}

// Bridges each guest vsock connection to its own connection to the PEP. The framework
// closes a connection's descriptor when the VZVirtioSocketConnection is released, so the
// bridge keeps it until both directions are done.
final class Bridge: NSObject, VZVirtioSocketListenerDelegate {
    let pepSocket: String
    var live = [ObjectIdentifier: VZVirtioSocketConnection]()
    let lock = NSLock()

    init(pepSocket: String) { self.pepSocket = pepSocket }

    func listener(_ listener: VZVirtioSocketListener,
                  shouldAcceptNewConnection connection: VZVirtioSocketConnection,
                  from socketDevice: VZVirtioSocketDevice) -> Bool {
        guard let pep = connectUnix(pepSocket) else {
            note("cannot connect to the PEP at '\(pepSocket)': \(String(cString: strerror(errno)))")
            return false
        }
        let key = ObjectIdentifier(connection)
        lock.lock()
        live[key] = connection
        lock.unlock()
        let guest = connection.fileDescriptor
        let group = DispatchGroup()
        for (src, dst) in [(guest, pep), (pep, guest)] {
            group.enter()
            Thread.detachNewThread {
                pump(from: src, to: dst)
                group.leave()
            }
        }
        group.notify(queue: .global()) { [weak self] in
            close(pep)
            connection.close()
            self?.lock.lock()
            self?.live.removeValue(forKey: key)
            self?.lock.unlock()
        }
        return true
    }
}

final class Watcher: NSObject, VZVirtualMachineDelegate {
    func guestDidStop(_ virtualMachine: VZVirtualMachine) {
        note("the guest stopped")
        exit(0)
    }

    func virtualMachine(_ virtualMachine: VZVirtualMachine, didStopWithError error: Error) {
        fail("the VM stopped with an error: \(error.localizedDescription)")
    }
}

let vm = VZVirtualMachine(configuration: config, queue: .main)
let watcher = Watcher()
vm.delegate = watcher
let bridge = Bridge(pepSocket: opts.pepSocket)
let listener = VZVirtioSocketListener()
listener.delegate = bridge

func stopNow() {
    if vm.canStop {
        vm.stop { _ in exit(0) }
    } else {
        exit(0)
    }
}

// SIGTERM: the power button first, then a hard stop once the timeout has passed.
signal(SIGTERM, SIG_IGN)
let termSource = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .main)
var stopRequested = false
termSource.setEventHandler {
    if stopRequested { return }
    stopRequested = true
    if vm.canRequestStop {
        do {
            try vm.requestStop()
            note("requestStop sent; stopping in \(opts.stopTimeout) s unless the guest does")
        } catch {
            note("requestStop failed: \(error.localizedDescription)")
        }
    }
    DispatchQueue.main.asyncAfter(deadline: .now() + opts.stopTimeout) { stopNow() }
}
termSource.resume()

// The parent's death (EVFILT_PROC NOTE_EXIT through kqueue): nothing may outlive pexi's
// supervisor, so the VM is stopped at once.
let parentSource = DispatchSource.makeProcessSource(identifier: parentPID, eventMask: .exit,
                                                    queue: .main)
parentSource.setEventHandler {
    note("the parent (pid \(parentPID)) exited: stopping the VM")
    stopNow()
}
parentSource.resume()
if getppid() != parentPID {
    fail("the parent exited while the runner started")
}

vm.start { result in
    switch result {
    case .success:
        guard let device = vm.socketDevices.first as? VZVirtioSocketDevice else {
            fail("the VM has no virtio socket device")
        }
        device.setSocketListener(listener, forPort: opts.vsockPort)
        note("started; vsock port \(opts.vsockPort) bridged to \(opts.pepSocket)")
    case .failure(let error):
        fail("cannot start the VM: \(error.localizedDescription)")
    }
}

dispatchMain()

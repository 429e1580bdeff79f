#include "vmm/vm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "devices/legacy/debug_port.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "irq_line.h"
#include "legacy_devices.h"
#include "memory/x86_64_layout.h"
#include "vmm/boot/boot_params.h"
#include "vmm/boot/cpu_setup.h"
#include "vmm/boot/cpuid.h"
#include "vmm/boot/e820.h"
#include "vmm/boot/kernel_loader.h"
#include "vmm/auto_balloon.h"
#include "vmm/boot/mptable.h"
#include "vmm/console_io.h"
#include "vmm/pci/pci_devices.h"
#include "vmm/pvm_workarounds.h"
#include "vmm/virtio_mmio_devices.h"

namespace vmm {

namespace {

constexpr uint64_t kTssAddress = 0xfffb'd000;  // 3 pages below the BIOS area, as FC/kvmtool
constexpr uint16_t kSerialPort = 0x3f8;
constexpr uint32_t kSerialGsi = 4;
constexpr uint16_t kI8042Port = 0x60;
constexpr uint32_t kI8042Gsi = 1;
constexpr uint16_t kDebugPort = 0x80;
constexpr const char* kDefaultCmdline = "console=ttyS0 reboot=k panic=1";

// Reads a whole file, refusing anything larger than `limit` (it could not fit in RAM).
Result<std::vector<std::byte>> read_file(const std::string& path, uint64_t limit, const char* what) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Error::from_errno(fmt::format("cannot open {} '{}'", what, path));
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return Error::from_errno(fmt::format("cannot stat {} '{}'", what, path));
    if (!S_ISREG(st.st_mode)) return Error::msg("{} '{}' is not a regular file", what, path);
    auto size = static_cast<uint64_t>(st.st_size);
    if (size == 0) return Error::msg("{} '{}' is empty", what, path);
    if (size > limit) {
        return Error::msg("{} '{}' ({} MiB) is larger than guest memory ({} MiB)", what, path, size >> 20, limit >> 20);
    }
    std::vector<std::byte> data(size);
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::read(fd.get(), data.data() + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno(fmt::format("reading {} '{}'", what, path));
        if (n == 0) return Error::msg("{} '{}' shrank while being read", what, path);
        done += static_cast<size_t>(n);
    }
    return data;
}

}  // namespace

Vm::Vm(VmConfig config, kvm::Kvm kvm, kvm::VmFd vm_fd, std::unique_ptr<ExitNotifier> exits)
    : m_config(std::move(config)), m_kvm(std::move(kvm)), m_vm_fd(std::move(vm_fd)), m_exits(std::move(exits)) {}

Vm::~Vm() {
    for (auto& vcpu : m_vcpus) vcpu->stop();
}

Result<std::unique_ptr<Vm>> Vm::create(const VmConfig& config, VmServices services) {
    if (config.cpus.boot == 0) return Error::msg("at least one vCPU is needed");
    if (config.payload.kernel.empty()) return Error::msg("no kernel given (--kernel)");
    // Bad input files are reported before any KVM object exists.
    uint64_t ram = config.memory.size;
    auto kernel_image = VMM_TRY(read_file(config.payload.kernel, ram, "kernel"));
    std::vector<std::byte> initramfs;
    if (config.payload.initramfs) initramfs = VMM_TRY(read_file(*config.payload.initramfs, ram, "initramfs"));
    kvm::Kvm kvm = VMM_TRY(kvm::Kvm::open());
    kvm::VmFd vm_fd = VMM_TRY(kvm.create_vm());
    auto exits = VMM_TRY(ExitNotifier::create());
    std::unique_ptr<Vm> vm(new Vm(config, std::move(kvm), std::move(vm_fd), std::move(exits)));
    vm->m_pvm_host = kvm::Kvm::host_is_pvm();

    VMM_TRY(vm->m_vm_fd.set_tss_address(kTssAddress));
    VMM_TRY(vm->m_vm_fd.create_irqchip());
    VMM_TRY(vm->m_vm_fd.create_pit2());
    VMM_TRY(vm->setup_memory());
    vm->m_loop.emplace(VMM_TRY(EventLoop::create()));
    VMM_TRY(vm->setup_virtio_devices());
    VMM_TRY(vm->setup_pci(std::move(services.vfio)));
    VMM_TRY(vm->load_payload(kernel_image, initramfs));
    VMM_TRY(vm->setup_legacy_devices());
    VMM_TRY(vm->create_vcpus());
    return vm;
}

Result<void> Vm::setup_memory() {
    uint64_t size = m_config.memory.size & ~uint64_t{0xfff};
    auto layout = memory::x86_64::ram_layout(size);
    memory::MappingOptions options;
    options.backing = m_config.memory.shared ? memory::Backing::memfd : memory::Backing::anonymous;
    options.transparent_huge_pages = m_config.memory.thp;
    options.prefault = m_config.memory.prefault;
    m_memory.emplace(VMM_TRY_CTX(memory::GuestMemory::create(layout, options), "guest memory"));
    uint32_t slot = 0;
    for (const auto& region : m_memory->regions()) {
        VMM_TRY(m_vm_fd.set_user_memory_region(slot++, region.start(), region.size(), region.host_address_for_kvm()));
    }
    return ok();
}

Result<void> Vm::load_payload(std::span<const std::byte> image, std::span<const std::byte> initramfs) {
    const auto& payload = m_config.payload;
    boot::LoadedKernel kernel = VMM_TRY_CTX(boot::load_kernel(*m_memory, image), fmt::format("kernel '{}'", payload.kernel));
    m_entry = kernel.entry;

    m_cmdline = payload.cmdline.empty() ? kDefaultCmdline : payload.cmdline;
    m_cmdline += m_virtio->cmdline_fragment();
    if (m_pvm_host) {
        m_cmdline += " " + pvm::cmdline_additions();
        log::warn("kvm_pvm host (no VMX/SVM): appended to the kernel command line: {}", pvm::cmdline_additions());
    }
    boot::BootParamsInput in;
    in.kernel = &kernel;
    in.cmdline = m_cmdline;
    in.initramfs = initramfs;
    in.e820 = boot::build_e820(*m_memory);
    VMM_TRY(boot::write_boot_params(*m_memory, in));
    auto pci_lines = m_pci->intx_lines();
    VMM_TRY(boot::write_mptable(*m_memory, m_config.cpus.boot, pci_lines));
    VMM_TRY(boot::write_page_tables_and_gdt(*m_memory));
    log::info("kernel '{}' loaded ({}), entry {:#x}, command line: {}", payload.kernel,
              kernel.format == boot::KernelFormat::elf ? "ELF" : "bzImage", kernel.entry.raw, m_cmdline);
    return ok();
}

Result<void> Vm::setup_legacy_devices() {
    m_legacy = std::make_unique<devices_fwd::LegacyDevices>();
    auto& legacy = *m_legacy;
    if (m_config.serial.mode != ConsoleMode::off) {
        ConsoleSink sink = VMM_TRY(make_console_sink(m_config.serial));
        legacy.serial_irq = VMM_TRY(IrqFdLine::create(m_vm_fd, kSerialGsi));
        legacy.serial = std::make_shared<devices::Serial8250>(legacy.serial_irq, std::move(sink));
        VMM_TRY(m_pio_bus.insert(legacy.serial, kSerialPort, 8));
    }
    legacy.i8042_irq = VMM_TRY(IrqFdLine::create(m_vm_fd, kI8042Gsi));
    ExitNotifier* exits = m_exits.get();
    legacy.i8042 = std::make_shared<devices::I8042>(
        legacy.i8042_irq, [exits] { exits->request(VmExitKind::reset, "guest reset through the i8042"); });
    // 0x60..0x64; the speaker port 0x61 inside that range is served by the in-kernel PIT.
    VMM_TRY(m_pio_bus.insert(legacy.i8042, kI8042Port, 5));
    legacy.debug_port = std::make_shared<devices::DebugPort>(log::start_time());
    VMM_TRY(m_pio_bus.insert(legacy.debug_port, kDebugPort, 1));
    return ok();
}

Result<void> Vm::create_vcpus() {
    auto supported = VMM_TRY(m_kvm.supported_cpuid());
    VcpuContext context{&m_pio_bus, &m_mmio_bus, &*m_memory, m_exits.get(), m_pvm_host};
    context.seccomp = m_config.seccomp;
    for (uint32_t i = 0; i < m_config.cpus.boot; ++i) {
        kvm::VcpuFd fd = VMM_TRY(m_vm_fd.create_vcpu(i));
        auto cpuid = supported;
        boot::normalize_cpuid(cpuid, {i, m_config.cpus.boot});
        // CPUID first: KVM hides MSRs that the guest's CPUID does not expose.
        VMM_TRY_CTX(fd.set_cpuid(cpuid), fmt::format("vCPU {}", i));
        VMM_TRY_CTX(fd.set_msrs(boot::boot_msrs()), fmt::format("vCPU {}", i));
        kvm_lapic_state lapic = VMM_TRY(fd.get_lapic());
        boot::configure_lapic_lint(lapic);
        VMM_TRY(fd.set_lapic(lapic));
        if (i == 0) {
            // The BSP starts at the kernel's 64-bit entry; APs wait for INIT/SIPI.
            VMM_TRY(fd.set_regs(boot::boot_registers(*m_entry)));
            kvm_sregs sregs = VMM_TRY(fd.get_sregs());
            VMM_TRY(fd.set_sregs(boot::long_mode_sregs(sregs)));
            VMM_TRY(fd.set_fpu(boot::boot_fpu()));
        }
        m_vcpus.push_back(std::make_unique<Vcpu>(std::move(fd), context));
    }
    return ok();
}

}  // namespace vmm

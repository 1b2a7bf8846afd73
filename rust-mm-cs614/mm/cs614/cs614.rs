// SPDX-License-Identifier: GPL-2.0

//! cs614, a memory-management component:
//!
//! - VMA move, in [`vma_move`];
//@ promotion
//! - huge page promotion and demotion, in [`promote`];
//@ end
//@ compaction
//! - compaction, in [`compact`].
//@ end
//!
//! User space drives the component through the misc device `/dev/cs614`, whose ioctls are
//! declared in `include/uapi/linux/cs614.h`.
//@ promotion
//! A promotion round is requested through the flag `/sys/kernel/kobject_cs614/promote`.
//@ end

//@ promotion
use core::fmt::Write;
//@ end
use kernel::{
    current,
    debugfs,
    //@ promotion
    ffi::c_int,
    //@ end
    fs::File,
    ioctl::{
        _IOR,
        _IOWR, //
    },
    //@ promotion
    kobject::{
        AttributeFile,
        AttributeMode,
        AttributeOps,
        Kobject,
        ShowBuffer, //
    },
    //@ end
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    mm::{
        pin::PinnedUserRange,
        MmWithUser, //
    },
    prelude::*,
    transmute::FromBytes,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi, //
};

//@ compaction
mod compact;
//@ end
mod mm_ext;
//@ promotion
mod promote;
//@ end
mod stats;
mod trace;
mod vma_move;

//@ promotion
use promote::Registrations;
//@ end
use vma_move::{
    move_vma,
    Destination, //
};

module! {
    type: Cs614Module,
    name: "cs614",
    authors: ["cs614 developers"],
    description: "cs614, a Rust memory-management component",
    license: "GPL",
}

/// The ioctl type of `/dev/cs614` (`CS614_IOCTL_TYPE` in the uapi header).
const IOC_TYPE: u32 = uapi::CS614_IOCTL_TYPE;

// The course ABI declares every command with a `char *` argument: the size field of the numbers
// is the size of a pointer, whatever structure the argument really points to.
const IOCTL_MVE_VMA_TO: u32 = _IOR::<*const u8>(IOC_TYPE, 0);
const IOCTL_MVE_VMA: u32 = _IOWR::<*const u8>(IOC_TYPE, 1);
//@ promotion
const IOCTL_PROMOTE_VMA: u32 = _IOR::<*const u8>(IOC_TYPE, 2);
//@ end
//@ compaction
const IOCTL_COMPACT_VMA: u32 = _IOWR::<*const u8>(IOC_TYPE, 3);
//@ end

/// Copies an ioctl argument of type `T` in from user space.
fn read_arg<T: FromBytes>(arg: UserPtr) -> Result<T> {
    UserSlice::new(arg, size_of::<T>()).reader().read::<T>()
}

/// The raw words of `struct cs614_move_vma`.
type MoveArgWords = [u64; 2];
const _: () = assert!(size_of::<MoveArgWords>() == size_of::<uapi::cs614_move_vma>());
//@ compaction

/// The raw words of `struct cs614_compact_vma`.
type CompactArgWords = [u64; 3];
const _: () = assert!(size_of::<CompactArgWords>() == size_of::<uapi::cs614_compact_vma>());
//@ end

/// Converts a user-supplied address to `usize`.
fn user_addr(addr: u64) -> Result<usize> {
    usize::try_from(addr).map_err(|_| EINVAL)
}

/// `IOCTL_MVE_VMA_TO`: moves the VMA of `mm`, the caller's, to the given address.
fn ioctl_move_to(mm: &MmWithUser, arg: usize) -> Result<isize> {
    let [vma_addr, to_addr] = read_arg::<MoveArgWords>(UserPtr::from_addr(arg))?;
    move_vma(
        mm,
        user_addr(vma_addr)?,
        Destination::At(user_addr(to_addr)?),
        None,
    )?;
    Ok(0)
}

/// `IOCTL_MVE_VMA`: moves the VMA of `mm`, the caller's, to the first hole after it that fits,
/// and writes the new start to `to_addr` of the argument.
///
/// The result cannot fail to be delivered once the VMA moved: `to_addr` is pinned before (not
/// writable: `EFAULT`), and an argument inside the VMA to move is refused (`EINVAL`), so the
/// page written is the one the caller passed, even if another thread unmaps it meanwhile.
fn ioctl_move_first_hole(mm: &MmWithUser, arg: usize) -> Result<isize> {
    let [vma_addr, _] = read_arg::<MoveArgWords>(UserPtr::from_addr(arg))?;
    // `to_addr` is the second word of `struct cs614_move_vma`.
    let result = arg.checked_add(size_of::<u64>()).ok_or(EFAULT)?;
    let pinned = PinnedUserRange::new(UserPtr::from_addr(result), size_of::<u64>())?;
    let arg_end = result.checked_add(size_of::<u64>()).ok_or(EFAULT)?;
    let new_start = move_vma(
        mm,
        user_addr(vma_addr)?,
        Destination::FirstHoleAfter,
        Some((arg, arg_end)),
    )?;
    // Cannot fail: the pinned range is 8 bytes long.
    pinned.write(0, &(new_start as u64).to_ne_bytes())?;
    Ok(0)
}
//@ compaction

/// `IOCTL_COMPACT_VMA` once its argument is read: validates it, prepares the registration for
/// demotion if the range can hold a huge page, and compacts.
fn compact_vma(
    registrations: &promote::Registrations,
    mm: &MmWithUser,
    addr: u64,
    length: u32,
    table: u64,
    stats: &mut trace::CompactStats,
) -> Result {
    let req = compact::Request::new(mm, addr, length, table)?;
    // Made only if compaction makes a huge page, but prepared now, when the range can hold one:
    // it cannot fail once pages moved.
    let registration = if req.may_promote() {
        Some(registrations.prepare(mm)?)
    } else {
        None
    };
    compact::compact(mm, &req, registration, stats)
}
//@ end

/// An open file of `/dev/cs614`.
#[pin_data]
//@ before promotion
struct Cs614File {}
//@ end
//@ promotion
struct Cs614File {
    /// The mms registered for promotion through this file, until it is released.
    #[pin]
    registrations: Registrations,
}
//@ end

#[vtable]
impl MiscDevice for Cs614File {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        //@ before promotion
        KBox::try_pin_init(try_pin_init!(Self {}), GFP_KERNEL)
        //@ end
        //@ promotion
        KBox::try_pin_init(
            try_pin_init!(Self {
                registrations <- Registrations::new(),
            }),
            GFP_KERNEL,
        )
        //@ end
    }

    fn ioctl(me: Pin<&Cs614File>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        me.get_ref().dispatch(cmd, arg)
    }
}

impl Cs614File {
    /// Runs the ioctl `cmd` of the caller, whose argument is at the user address `arg`.
    fn dispatch(&self, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            IOCTL_MVE_VMA_TO | IOCTL_MVE_VMA => {
                let task = current!();
                let mm = task.mm().ok_or(EINVAL)?;
                if cmd == IOCTL_MVE_VMA_TO {
                    ioctl_move_to(mm, arg)
                } else {
                    ioctl_move_first_hole(mm, arg)
                }
            }
            //@ promotion
            // The argument, a pointer to an unsigned int, carries nothing: it is never read, so
            // any value, NULL or unmapped included, is accepted.
            IOCTL_PROMOTE_VMA => {
                let task = current!();
                let mm = task.mm().ok_or(EINVAL)?;
                self.registrations.register(mm)?;
                Ok(0)
            }
            //@ end
            //@ compaction
            IOCTL_COMPACT_VMA => {
                let task = current!();
                let mm = task.mm().ok_or(EINVAL)?;
                let [addr, length_pad, table] =
                    read_arg::<CompactArgWords>(UserPtr::from_addr(arg))?;
                // `u32 length; u32 pad;` share the second word; `pad` is ignored.
                let [l0, l1, l2, l3, ..] = length_pad.to_ne_bytes();
                let length = u32::from_ne_bytes([l0, l1, l2, l3]);
                let mut stats = trace::CompactStats::default();
                let ret = compact_vma(&self.registrations, mm, addr, length, table, &mut stats);
                trace::trace_compact(
                    task.tgid(),
                    addr as usize,
                    length as usize,
                    &stats,
                    trace::errno(&ret),
                );
                stats::count_compaction(&stats, ret.is_ok());
                ret.map(|()| 0)
            }
            //@ end
            _ => Err(ENOTTY),
        }
    }
}
//@ promotion

/// The flag `/sys/kernel/kobject_cs614/promote`: writing `1` requests a promotion round; it
/// reads `1` until that round is over. Writing `0` is accepted and changes nothing: a round
/// cannot be cancelled.
struct PromoteFlag;

/// Parses a write to the promote flag: whether it requests a round, `None` if it is invalid.
///
/// Two conventions are accepted. A write of exactly `size_of::<c_int>()` bytes is a native
/// `int`, as the course's programs write it (`write(fd, &one, sizeof(int))`) and its reference
/// module reads it (`*(int *)buf`): nonzero requests a round, zero does nothing. So do the bytes
/// of `sprintf(buf, "%d", 1)` or of a reused read buffer, `"0\n"`, padded to four bytes:
/// nonzero, a round. Any other length is kernel text, as `echo` writes it: `0` or `1`, then at
/// most one newline, up to the first NUL byte.
fn parse_flag(input: &[u8]) -> Option<bool> {
    if let Ok(bytes) = <[u8; size_of::<c_int>()]>::try_from(input) {
        return Some(c_int::from_ne_bytes(bytes) != 0);
    }
    let text = input.split(|&b| b == 0).next().unwrap_or_default();
    match text.strip_suffix(b"\n").unwrap_or(text) {
        b"0" => Some(false),
        b"1" => Some(true),
        _ => None,
    }
}

#[vtable]
impl AttributeOps for PromoteFlag {
    fn show(&self, buf: &mut ShowBuffer<'_>) -> Result {
        let value = u8::from(promote::round_pending());
        writeln!(buf, "{value}").map_err(|_| EINVAL)
    }

    fn store(&self, input: &[u8]) -> Result {
        if parse_flag(input).ok_or(EINVAL)? {
            promote::request_round();
        }
        Ok(())
    }
}
//@ end

#[pin_data]
struct Cs614Module {
    #[pin]
    _miscdev: MiscDeviceRegistration<Cs614File>,
    //@ promotion
    #[pin]
    _promote: AttributeFile<PromoteFlag>,
    /// `cs614/registry` in debugfs: the registered mms, for debugging.
    #[pin]
    _registry: debugfs::File<()>,
    //@ end
    /// `cs614/stats` in debugfs: the counters.
    #[pin]
    _stats: debugfs::File<()>,
    _debugfs: debugfs::Dir,
}

impl kernel::InPlaceModule for Cs614Module {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        //@ promotion
        // SAFETY: Called once, before anything else of the module runs.
        unsafe { promote::init() };
        //@ end
        let debugfs = debugfs::Dir::new(c"cs614");
        try_pin_init!(Self {
            //@ promotion
            _registry <- debugfs.read_callback_file(c"registry", (), &|(), f| {
                promote::show_registry(f)
            }),
            //@ end
            _stats <- debugfs.read_callback_file(c"stats", (), &|(), f| stats::show(f)),
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"cs614",
                mode: 0o666,
            }),
            //@ promotion
            _promote <- AttributeFile::new(
                Kobject::create_and_add(c"kobject_cs614", Kobject::kernel().ok_or(ENODEV)?)?,
                c"promote",
                AttributeMode::new::<0o644>(),
                PromoteFlag,
                kernel::sync::static_lock_class!(),
            ),
            //@ end
            _debugfs: debugfs,
        })
    }
}

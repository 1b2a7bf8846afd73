// SPDX-License-Identifier: GPL-2.0

//! cs614: VMA move, huge page promotion and compaction.
//!
//! User space drives the component through the misc device `/dev/cs614`, whose ioctls are
//! declared in `include/uapi/linux/cs614.h`, and through the flag
//! `/sys/kernel/kobject_cs614/promote`.

use core::fmt::Write;
use kernel::{
    current,
    fs::File,
    ioctl::{_IOR, _IOWR},
    kobject::{AttributeFile, AttributeOps, Kobject, ShowBuffer},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    mm::MmWithUser,
    prelude::*,
    transmute::FromBytes,
    uaccess::{UserPtr, UserSlice},
    uapi,
};

mod compact;
mod promote;
mod vma_move;

use promote::Registrations;
use vma_move::{move_vma, Destination};

module! {
    type: Cs614Module,
    name: "cs614",
    authors: ["cs614 developers"],
    description: "VMA move, huge page promotion and compaction",
    license: "GPL",
}

/// The ioctl type of `/dev/cs614` (`CS614_IOCTL_TYPE` in the uapi header).
const IOC_TYPE: u32 = uapi::CS614_IOCTL_TYPE;

// The course ABI declares every command with a `char *` argument: the size field of the numbers
// is the size of a pointer, whatever structure the argument really points to.
const IOCTL_MVE_VMA_TO: u32 = _IOR::<*const u8>(IOC_TYPE, 0);
const IOCTL_MVE_VMA: u32 = _IOWR::<*const u8>(IOC_TYPE, 1);
const IOCTL_PROMOTE_VMA: u32 = _IOR::<*const u8>(IOC_TYPE, 2);
const IOCTL_COMPACT_VMA: u32 = _IOWR::<*const u8>(IOC_TYPE, 3);

/// Copies an ioctl argument of type `T` in from user space.
fn read_arg<T: FromBytes>(arg: UserPtr) -> Result<T> {
    UserSlice::new(arg, size_of::<T>()).reader().read::<T>()
}

/// The raw words of `struct cs614_move_vma`.
type MoveArgWords = [u64; 2];
/// The raw words of `struct cs614_compact_vma`.
type CompactArgWords = [u64; 3];

const _: () = assert!(size_of::<MoveArgWords>() == size_of::<uapi::cs614_move_vma>());
const _: () = assert!(size_of::<CompactArgWords>() == size_of::<uapi::cs614_compact_vma>());

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
    )?;
    Ok(0)
}

/// `IOCTL_MVE_VMA`: moves the VMA of `mm`, the caller's, to the first hole after it that fits,
/// and writes the new start to `to_addr` of the argument.
///
/// That field is checked to be writable before anything moves; should writing it fault
/// afterwards all the same (another thread unmapped it meanwhile), the move is undone and
/// `EFAULT` returned.
fn ioctl_move_first_hole(mm: &MmWithUser, arg: usize) -> Result<isize> {
    let [vma_addr, to_addr] = read_arg::<MoveArgWords>(UserPtr::from_addr(arg))?;
    // `to_addr` is the second word of `struct cs614_move_vma`.
    let result = UserPtr::from_addr(arg.checked_add(size_of::<u64>()).ok_or(EFAULT)?);
    let write_result = |value: u64| {
        UserSlice::new(result, size_of::<u64>())
            .writer()
            .write(&value)
    };

    write_result(to_addr)?;
    let moved = move_vma(mm, user_addr(vma_addr)?, Destination::FirstHoleAfter)?;
    if let Err(err) = write_result(moved.new_start as u64) {
        if move_vma(mm, moved.new_start, Destination::At(moved.old_start)).is_err() {
            pr_warn!("cs614: could not undo a move whose result could not be written\n");
        }
        return Err(err);
    }
    Ok(0)
}

/// An open file of `/dev/cs614`.
#[pin_data]
struct Cs614File {
    /// The mms registered for promotion through this file, until it is released.
    #[pin]
    registrations: Registrations,
}

#[vtable]
impl MiscDevice for Cs614File {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                registrations <- Registrations::new(),
            }),
            GFP_KERNEL,
        )
    }

    fn ioctl(me: Pin<&Cs614File>, _file: &File, cmd: u32, raw_arg: usize) -> Result<isize> {
        let arg = UserPtr::from_addr(raw_arg);
        match cmd {
            IOCTL_MVE_VMA_TO | IOCTL_MVE_VMA => {
                let task = current!();
                let mm = task.mm().ok_or(EINVAL)?;
                if cmd == IOCTL_MVE_VMA_TO {
                    ioctl_move_to(mm, raw_arg)
                } else {
                    ioctl_move_first_hole(mm, raw_arg)
                }
            }
            // The argument, a pointer to an unsigned int, carries nothing: it is never read, so
            // any value, NULL or unmapped included, is accepted.
            IOCTL_PROMOTE_VMA => {
                let task = current!();
                let mm = task.mm().ok_or(EINVAL)?;
                me.registrations.register(mm)?;
                Ok(0)
            }
            IOCTL_COMPACT_VMA => {
                let task = current!();
                let mm = task.mm().ok_or(EINVAL)?;
                let [addr, length_pad, table] = read_arg::<CompactArgWords>(arg)?;
                // `u32 length; u32 pad;` share the second word; `pad` is ignored.
                let [l0, l1, l2, l3, ..] = length_pad.to_ne_bytes();
                let req = compact::Request::new(addr, u32::from_ne_bytes([l0, l1, l2, l3]), table)?;
                if compact::compact(mm, &req)? {
                    // Later splits of the new huge pages demote them, as for promotion.
                    me.registrations.register(mm)?;
                }
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// The flag `/sys/kernel/kobject_cs614/promote`: writing `1` requests a promotion round; it
/// reads `1` until that round is over. Writing `0` is accepted and changes nothing: a round
/// cannot be cancelled.
struct PromoteFlag;

/// Parses a write to a 0/1 flag.
///
/// Accepts `0` or `1`, optionally followed by one newline and then by NUL bytes, as written by
/// `echo 1` or by `write(fd, buf, 4)` after `sprintf(buf, "%d", 1)`.
fn parse_flag(input: &[u8]) -> Option<bool> {
    let mut input = input;
    while let [rest @ .., 0] = input {
        input = rest;
    }
    if let [rest @ .., b'\n'] = input {
        input = rest;
    }
    match input {
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

#[pin_data]
struct Cs614Module {
    #[pin]
    _miscdev: MiscDeviceRegistration<Cs614File>,
    #[pin]
    _promote: AttributeFile<PromoteFlag>,
}

impl kernel::InPlaceModule for Cs614Module {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // SAFETY: Called once, before anything else of the module runs.
        unsafe { promote::init() };
        try_pin_init!(Self {
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"cs614",
                mode: 0o666,
            }),
            _promote <- AttributeFile::new(
                Kobject::create_and_add(c"kobject_cs614", Kobject::kernel().ok_or(ENODEV)?)?,
                c"promote",
                0o644,
                PromoteFlag,
            ),
        })
    }
}

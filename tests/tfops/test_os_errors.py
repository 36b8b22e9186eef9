"""tf-native's file-system errors carry the errno that the other engines' OSErrors carry (a
TensorFlow status has only a code and a message): the conformance kit's fault tests compare
errno on every engine."""
import errno

from engines.tfops.engine import _os_error


def test_errno_is_read_from_the_kernel_message():
    assert _os_error("cannot list directory /d: Permission denied").errno == errno.EACCES
    assert _os_error("cannot write /d/.t.manifest.tmp-1: No space left on device: No space "
                     "left on device").errno == errno.ENOSPC
    assert _os_error("rename /d/a -> /d/b: Not a directory").errno == errno.ENOTDIR
    assert _os_error("remove /d/t-00000-of-00003: Is a directory").errno == errno.EISDIR


def test_a_message_without_an_errno_text_stays_a_plain_oserror():
    exc = _os_error("the op library failed somehow")
    assert exc.errno is None and str(exc) == "the op library failed somehow"

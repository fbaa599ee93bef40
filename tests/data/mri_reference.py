"""NumPy references of the centred orthonormal FFTs (`lps_keras.data.mri.fft2c` and
`ifft2c`), shared by the MRI data tests."""

import numpy as np


def np_fft2c(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"),
                           axes=(-2, -1))


def np_ifft2c(k):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"),
                           axes=(-2, -1))

from firmware.start import main
main()
